package bench

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"text/tabwriter"
	"time"

	"github.com/kura-cc/kura/mpc/psi"
)

// PSIConfig configures PSI.
type PSIConfig struct {
	// Rows is each party's number of identifiers; Overlap the fraction of
	// A's that B holds too.
	Rows    int
	Overlap float64
	JSON    bool
}

// PSIReport is what PSI measured.
type PSIReport struct {
	Rows             int     `json:"rows_per_party"`
	Intersection     int     `json:"intersection"`
	Cores            int     `json:"cores"`
	BlindSeconds     float64 `json:"a_blind_s"`
	RespondSeconds   float64 `json:"b_respond_s"`
	FinishSeconds    float64 `json:"a_finish_s"`
	TotalSeconds     float64 `json:"total_s"`
	WireBytes        int     `json:"wire_bytes"`
	ElementsPerCoreS float64 `json:"elements_per_core_s"`
	// CPUSeconds is the process's CPU time over the run, where the platform
	// tells it: against TotalSeconds × Cores it shows how busy the cores
	// were, and on a shared machine it moves less than wall-clock time.
	CPUSeconds float64 `json:"cpu_s,omitempty"`
}

// PSI runs one two-party private set intersection (package mpc/psi) of
// Rows identifiers each, both parties in this process, every message
// through its wire encoding, and checks the intersection against the
// plaintext join. It reports each phase's time and the rate per core,
// counting each party's identifiers once.
func PSI(ctx context.Context, cfg PSIConfig, w io.Writer) error {
	if cfg.Rows <= 0 || cfg.Rows > psi.MaxElements || cfg.Overlap < 0 || cfg.Overlap > 1 {
		return fmt.Errorf("%w: --rows must be 1 to %d and --overlap 0 to 1", ErrUsage, psi.MaxElements)
	}
	a, b := make([][]byte, cfg.Rows), make([][]byte, cfg.Rows)
	shared := int(float64(cfg.Rows) * cfg.Overlap)
	for i := range cfg.Rows {
		a[i] = fmt.Appendf(nil, "+81-90-%08d", i) // phone-number-like identifiers
		if i < shared {
			b[i] = a[i]
		} else {
			b[i] = fmt.Appendf(nil, "+81-80-%08d", i)
		}
	}
	session, err := psi.NewSessionID(rand.Reader)
	if err != nil {
		return err
	}
	pc := psi.Config{Session: session, Mode: psi.ModeCardinality, MaxElements: max(cfg.Rows, psi.DefaultMaxElements)}
	r := PSIReport{Rows: cfg.Rows, Cores: runtime.GOMAXPROCS(0)}
	start, cpu := time.Now(), processCPU()
	s, err := psi.NewSender(pc, a)
	if err != nil {
		return err
	}
	defer s.Close()
	req, err := s.Request()
	if err != nil {
		return err
	}
	reqWire, err := req.MarshalBinary()
	if err != nil {
		return err
	}
	r.BlindSeconds = time.Since(start).Seconds()
	if err := ctx.Err(); err != nil {
		return err
	}
	t := time.Now()
	rcv, err := psi.NewReceiver(pc, b)
	if err != nil {
		return err
	}
	defer rcv.Close()
	var req2 psi.Request
	if err := req2.UnmarshalBinary(reqWire); err != nil {
		return err
	}
	resp, err := rcv.Respond(&req2)
	if err != nil {
		return err
	}
	respWire, err := resp.MarshalBinary()
	if err != nil {
		return err
	}
	r.RespondSeconds = time.Since(t).Seconds()
	t = time.Now()
	var resp2 psi.Response
	if err := resp2.UnmarshalBinary(respWire); err != nil {
		return err
	}
	res, err := s.Finish(&resp2)
	if err != nil {
		return err
	}
	r.FinishSeconds = time.Since(t).Seconds()
	r.TotalSeconds = time.Since(start).Seconds()
	if cpu > 0 {
		r.CPUSeconds = (processCPU() - cpu).Seconds()
	}
	r.Intersection, r.WireBytes = res.Size(), len(reqWire)+len(respWire)
	if r.Intersection != shared {
		return fmt.Errorf("psi: the intersection has %d identifiers, the plaintext join %d", r.Intersection, shared)
	}
	r.ElementsPerCoreS = float64(2*cfg.Rows) / r.TotalSeconds / float64(r.Cores)
	if cfg.JSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "PSI %d × %d identifiers, ristretto255, cardinality mode, %d cores\t\n", cfg.Rows, cfg.Rows, r.Cores)
	fmt.Fprintf(tw, "  A blinds its set\t%.2f s\n", r.BlindSeconds)
	fmt.Fprintf(tw, "  B re-blinds A's and blinds its own\t%.2f s\n", r.RespondSeconds)
	fmt.Fprintf(tw, "  A matches\t%.2f s\n", r.FinishSeconds)
	fmt.Fprintf(tw, "  total\t%.2f s (intersection %d, equal to the plaintext join; %d bytes on the wire)\n", r.TotalSeconds, r.Intersection, r.WireBytes)
	if r.CPUSeconds > 0 {
		fmt.Fprintf(tw, "  CPU\t%.2f s (%.0f %% of %d cores)\n", r.CPUSeconds, 100*r.CPUSeconds/r.TotalSeconds/float64(r.Cores), r.Cores)
	}
	fmt.Fprintf(tw, "  rate\t%.0f identifiers/s per core (OpenMined PSI publishes ~4,000/s per client)\n", r.ElementsPerCoreS)
	return tw.Flush()
}
