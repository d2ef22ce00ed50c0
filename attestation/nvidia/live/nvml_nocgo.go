//go:build !cgo

package live

import "errors"

// errNoCgo is why a kura built without cgo has no NVML: go-nvml loads
// libnvidia-ml through cgo.
var errNoCgo = errors.New("this kura was built without cgo (CGO_ENABLED=0) and cannot load it; build with cgo to attest GPUs")

// openNVML returns an NVML that fails to load.
func openNVML() nvmlLib { return noNVML{} }

type noNVML struct{}

func (noNVML) init() error                             { return errNoCgo }
func (noNVML) shutdown() error                         { return nil }
func (noNVML) system() (CCState, error)                { return CCState{}, errNoCgo }
func (noNVML) device(int) (nvmlDevice, GPUInfo, error) { return nil, GPUInfo{}, errNoCgo }
