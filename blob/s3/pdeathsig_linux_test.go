package s3

import (
	"os/exec"
	"syscall"
)

// setPdeathsig makes the kernel kill the gateway if the test binary dies
// without stopping it (a test timeout, a crash).
func setPdeathsig(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
