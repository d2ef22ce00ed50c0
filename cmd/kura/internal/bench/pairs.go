package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// A Figure is one row of a side-by-side measurement: kura and the
// baseline a user would otherwise run, measured in alternated pairs in one
// run, so that a shared machine's load moves both alike. Ratio is kura
// over the baseline in the figure's unit: for a time (Unit "s", "ms",
// "MiB") below 1 is better, for a rate ("/s") above 1 is.
type Figure struct {
	Name     string    `json:"name"`
	Baseline string    `json:"baseline"`
	Unit     string    `json:"unit"`
	Target   string    `json:"target,omitempty"`
	Kura     []float64 `json:"kura"`
	Base     []float64 `json:"baseline_values"`
}

// Ratios returns kura / baseline for each pair.
func (f *Figure) Ratios() []float64 {
	r := make([]float64, 0, min(len(f.Kura), len(f.Base)))
	for i := range cap(r) {
		if f.Base[i] != 0 {
			r = append(r, f.Kura[i]/f.Base[i])
		}
	}
	return r
}

// A Variant measures once and returns the value in its figure's unit.
type Variant func(context.Context) (float64, error)

// Alternate measures n pairs of base and kura into f, swapping which runs
// first in every other pair, so that neither always meets a warm or a
// cold machine.
func Alternate(ctx context.Context, f *Figure, n int, base, kura Variant) error {
	for i := range n {
		order := []struct {
			run  Variant
			into *[]float64
			what string
		}{{base, &f.Base, f.Baseline}, {kura, &f.Kura, "kura"}}
		if i%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, o := range order {
			if err := ctx.Err(); err != nil {
				return err
			}
			v, err := o.run(ctx)
			if err != nil {
				return fmt.Errorf("%s, %s (pair %d): %w", f.Name, o.what, i+1, err)
			}
			*o.into = append(*o.into, v)
		}
	}
	return nil
}

// WriteFigures prints figures as a table, or as JSON with asJSON: each
// row's kura and baseline medians, the ratio's median and its min–max
// over the pairs, and the target.
func WriteFigures(w io.Writer, figs []Figure, asJSON bool) error {
	if asJSON {
		type row struct {
			Figure
			RatioMedian float64 `json:"ratio_median"`
			RatioMin    float64 `json:"ratio_min"`
			RatioMax    float64 `json:"ratio_max"`
		}
		rows := make([]row, len(figs))
		for i, f := range figs {
			r := f.Ratios()
			rows[i] = row{Figure: f}
			if len(r) > 0 {
				rows[i].RatioMedian, rows[i].RatioMin, rows[i].RatioMax = medianOf(r), slices.Min(r), slices.Max(r)
			}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tbaseline\tkura\tbaseline\tratio\tmin–max\tpairs\ttarget")
	for _, f := range figs {
		r := f.Ratios()
		if len(r) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t0\t%s\n", f.Name, f.Baseline, f.Target)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s %s\t%.2f×\t%.2f–%.2f\t%d\t%s\n", f.Name, f.Baseline,
			num(medianOf(f.Kura)), f.Unit, num(medianOf(f.Base)), f.Unit,
			medianOf(r), slices.Min(r), slices.Max(r), len(r), f.Target)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "ratio: kura / baseline, median of alternated pairs; for times and memory below 1 is better, for rates (/s) above 1")
	return err
}

func medianOf(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

// num prints v with three significant digits, without exponents.
func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.4f", v), "0"), ".")
	}
}
