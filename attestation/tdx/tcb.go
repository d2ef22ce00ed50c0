package tdx

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/go-tdx-guest/pcs"
)

// tcbEvaluation is the outcome of Intel's TCB level matching for a quote.
type tcbEvaluation struct {
	// status is the platform TCB status converged with the TDX module's
	// and the QE's, as Intel's Quote Verification Library does: an
	// OutOfDate module or QE makes an otherwise current platform OutOfDate.
	status pcs.TcbComponentStatus
	// platform, module and qe are the statuses of the matching levels;
	// module is empty when the TDX module has no separate identity
	// (TEE_TCB_SVN[1] is 0).
	platform, module, qe pcs.TcbComponentStatus
	// date is the earliest tcbDate of the matching levels.
	date string
	// advisoryIDs is the sorted union of the matching levels' advisories.
	advisoryIDs []string
}

// tcbInputs are the quote and PCK certificate values TCB matching reads.
type tcbInputs struct {
	teeTcbSvn      []byte // TEE_TCB_SVN from the TD quote body
	cpuSvn         []byte // SGX TCB component SVNs from the PCK certificate
	pceSvn         uint16 // PCESVN from the PCK certificate
	qeIsvSvn       uint32 // ISVSVN from the QE report
	mrSignerSeam   []byte
	seamAttributes []byte
}

// evaluateTCB finds the TCB levels matching the platform, the TDX module
// and the QE, following Intel's algorithm for TDX TCB info v3 (the
// go-tdx-guest pcs/verify packages and Intel's PCS documentation):
//
//  1. The platform level is the first in tcbLevels (sorted newest first)
//     whose sgxtcbcomponents are all <= the PCK certificate's SGX TCB
//     component SVNs, whose pcesvn is <= the PCK certificate's PCESVN, and
//     whose tdxtcbcomponents are all <= TEE_TCB_SVN, comparing from index 2
//     when TEE_TCB_SVN[1] (the TDX module major version) is not 0.
//  2. When TEE_TCB_SVN[1] is not 0, the TDX module identity "TDX_<xx>" with
//     xx = TEE_TCB_SVN[1] in hex must exist, MRSIGNERSEAM and SEAM
//     attributes must match it, and the module level is its first level
//     whose isvsvn is <= TEE_TCB_SVN[0].
//  3. The QE level is the first QE identity level whose isvsvn is <= the
//     QE report's ISVSVN.
//
// No matching level at any step is ErrTCBNotSupported; a Revoked level is
// ErrTCBRevoked. Other statuses are reported, not judged.
func evaluateTCB(info *pcs.TcbInfo, qeLevels []pcs.TcbLevel, in tcbInputs) (*tcbEvaluation, error) {
	if len(in.teeTcbSvn) != 16 || len(in.cpuSvn) != 16 {
		return nil, fmt.Errorf("%w: TEE_TCB_SVN or CPUSVN is not 16 bytes", ErrTCBNotSupported)
	}
	platform, ok := matchPlatformLevel(info.TcbLevels, in)
	if !ok {
		return nil, fmt.Errorf("%w: no tcb info level for SGX SVNs %x, PCESVN %d, TEE_TCB_SVN %x", ErrTCBNotSupported, in.cpuSvn, in.pceSvn, in.teeTcbSvn)
	}
	ev := &tcbEvaluation{platform: platform.TcbStatus, status: platform.TcbStatus}
	levels := []pcs.TcbLevel{platform}

	if version := in.teeTcbSvn[1]; version != 0 {
		id := fmt.Sprintf("TDX_%02X", version)
		i := slices.IndexFunc(info.TdxModuleIdentities, func(m pcs.TdxModuleIdentity) bool { return strings.EqualFold(m.ID, id) })
		if i < 0 {
			return nil, fmt.Errorf("%w: tcb info has no TDX module identity %s", ErrTCBNotSupported, id)
		}
		m := info.TdxModuleIdentities[i]
		body := tdBody{mrSignerSeam: in.mrSignerSeam, seamAttributes: in.seamAttributes}
		if err := checkModule("tcb info "+id, m.Mrsigner.Bytes, m.Attributes.Bytes, m.AttributesMask.Bytes, &body); err != nil {
			return nil, err
		}
		j := slices.IndexFunc(m.TcbLevels, func(l pcs.TcbLevel) bool { return uint32(in.teeTcbSvn[0]) >= l.Tcb.Isvsvn })
		if j < 0 {
			return nil, fmt.Errorf("%w: no %s level for TDX module SVN %d", ErrTCBNotSupported, id, in.teeTcbSvn[0])
		}
		ev.module = m.TcbLevels[j].TcbStatus
		ev.status = converge(ev.status, ev.module)
		levels = append(levels, m.TcbLevels[j])
	}

	k := slices.IndexFunc(qeLevels, func(l pcs.TcbLevel) bool { return in.qeIsvSvn >= l.Tcb.Isvsvn })
	if k < 0 {
		return nil, fmt.Errorf("%w: no qe identity level for QE ISVSVN %d", ErrTCBNotSupported, in.qeIsvSvn)
	}
	ev.qe = qeLevels[k].TcbStatus
	ev.status = converge(ev.status, ev.qe)
	levels = append(levels, qeLevels[k])

	if ev.status == pcs.TcbComponentStatusRevoked {
		return ev, fmt.Errorf("%w: platform %s, module %s, QE %s", ErrTCBRevoked, ev.platform, orNone(ev.module), ev.qe)
	}
	ev.advisoryIDs = []string{}
	var earliest time.Time
	for _, l := range levels {
		ev.advisoryIDs = append(ev.advisoryIDs, l.AdvisoryIDs...)
		if t, err := time.Parse(time.RFC3339, l.TcbDate); err == nil && (earliest.IsZero() || t.Before(earliest)) {
			earliest, ev.date = t, l.TcbDate
		}
	}
	slices.Sort(ev.advisoryIDs)
	ev.advisoryIDs = slices.Compact(ev.advisoryIDs)
	return ev, nil
}

// matchPlatformLevel is step 1 of evaluateTCB.
func matchPlatformLevel(levels []pcs.TcbLevel, in tcbInputs) (pcs.TcbLevel, bool) {
	tdxFrom := 0
	if in.teeTcbSvn[1] != 0 {
		tdxFrom = 2 // SVNs 0 and 1 belong to the TDX module identity
	}
	for _, l := range levels {
		sgx, tdx := l.Tcb.SgxTcbcomponents, l.Tcb.TdxTcbcomponents
		if len(sgx) != 16 || len(tdx) != 16 || in.pceSvn < l.Tcb.Pcesvn {
			continue
		}
		if allAtLeast(in.cpuSvn, sgx, 0) && allAtLeast(in.teeTcbSvn, tdx, tdxFrom) {
			return l, true
		}
	}
	return pcs.TcbLevel{}, false
}

// allAtLeast reports whether svn[i] >= comps[i].Svn for every i >= from.
func allAtLeast(svn []byte, comps []pcs.TcbComponent, from int) bool {
	for i := from; i < len(comps); i++ {
		if svn[i] < comps[i].Svn {
			return false
		}
	}
	return true
}

// converge folds a TDX module or QE status into the platform status the way
// Intel's Quote Verification Library does.
func converge(platform, other pcs.TcbComponentStatus) pcs.TcbComponentStatus {
	switch other {
	case pcs.TcbComponentStatusRevoked:
		return pcs.TcbComponentStatusRevoked
	case pcs.TcbComponentStatusOutOfDate:
		switch platform {
		case pcs.TcbComponentStatusUpToDate, pcs.TcbComponentStatusSwHardeningNeeded:
			return pcs.TcbComponentStatusOutOfDate
		case pcs.TcbComponentStatusConfigurationNeeded, pcs.TcbComponentStatusConfigurationAndSWHardeningNeeded:
			return pcs.TcbComponentStatusOutOfDateConfigurationNeeded
		}
	}
	return platform
}

func orNone(s pcs.TcbComponentStatus) pcs.TcbComponentStatus {
	if s == "" {
		return "none"
	}
	return s
}
