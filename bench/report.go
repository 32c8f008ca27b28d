package main

// Summarising the rounds: per shape and candidate, the median over the
// rounds, and the ratio to the shape's reference taken round by round
// (median, min and max of those ratios).

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
)

// measurement is one candidate's figures in one round.
type measurement struct {
	Shape     string    `json:"shape"`
	Candidate string    `json:"candidate"`
	Round     int       `json:"round"`
	Value     float64   `json:"value"`                 // what ratios are taken of: see the shape's metric
	Rate      float64   `json:"msgs_per_s"`            // values (round trips for rtt) per second
	Lat       *latency  `json:"latency_us,omitempty"`  // rtt
	RSS       []float64 `json:"rss_mb,omitempty"`      // slowrecv-mem: the sender's, every 250 ms
	RecvRSS   []float64 `json:"recv_rss_mb,omitempty"` // slowrecv-mem: the receiver's, at the same times
	Dropped   int64     `json:"dropped,omitempty"`
	Err       string    `json:"error,omitempty"`
}

// row is one line of the table: a candidate of a shape over the rounds.
type row struct {
	Shape     string   `json:"shape"`
	Candidate string   `json:"candidate"`
	Reference bool     `json:"reference"`
	Rounds    int      `json:"rounds"` // rounds that measured it
	Median    float64  `json:"median"`
	Ratio     float64  `json:"ratio,omitempty"` // median of the per-round ratios to the reference
	RatioMin  float64  `json:"ratio_min,omitempty"`
	RatioMax  float64  `json:"ratio_max,omitempty"`
	Result    string   `json:"result"` // the table's result cell
	Errors    []string `json:"errors,omitempty"`
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// summarise makes the table's rows from the measurements.
func summarise(run []shape, ms []measurement) []row {
	var rows []row
	for _, s := range run {
		of := func(c candidate) map[int]measurement {
			byRound := make(map[int]measurement)
			for _, m := range ms {
				if m.Shape == s.name && m.Candidate == c.label {
					byRound[m.Round] = m
				}
			}
			return byRound
		}
		ref := of(s.cands[0])
		for i, c := range s.cands {
			got := of(c)
			r := row{Shape: s.name, Candidate: c.label, Reference: i == 0}
			var values, ratios, p99Ratios []float64
			for round, m := range got {
				if m.Err != "" {
					r.Errors = append(r.Errors, fmt.Sprintf("round %d: %s", round, firstLine(m.Err)))
					continue
				}
				values = append(values, m.Value)
				if rm, ok := ref[round]; ok && rm.Err == "" && i > 0 {
					ratios = append(ratios, m.Value/rm.Value)
					if m.Lat != nil && rm.Lat != nil {
						p99Ratios = append(p99Ratios, m.Lat.P99/rm.Lat.P99)
					}
				}
			}
			r.Rounds = len(values)
			r.Median = median(values)
			if len(ratios) > 0 {
				r.Ratio, r.RatioMin, r.RatioMax = median(ratios), slices.Min(ratios), slices.Max(ratios)
			}
			r.Result = resultCell(s.metric, got)
			if len(p99Ratios) > 0 {
				r.Result += fmt.Sprintf("; p99 %.2f× the reference", median(p99Ratios))
			}
			rows = append(rows, r)
		}
	}
	return rows
}

// resultCell describes a candidate's medians over its rounds.
func resultCell(mt metric, byRound map[int]measurement) string {
	var rates, p50, p99, p999, rss0, rssHalf, rssEnd, recv0, recvHalf, recvEnd []float64
	var dropped int64
	for _, m := range byRound {
		if m.Err != "" {
			continue
		}
		rates = append(rates, m.Rate)
		dropped = max(dropped, m.Dropped)
		if m.Lat != nil {
			p50, p99, p999 = append(p50, m.Lat.P50), append(p99, m.Lat.P99), append(p999, m.Lat.P999)
		}
		if n := len(m.RSS); n > 0 {
			rss0, rssHalf, rssEnd = append(rss0, m.RSS[0]), append(rssHalf, m.RSS[n/2]), append(rssEnd, m.RSS[n-1])
		}
		if n := len(m.RecvRSS); n > 0 {
			recv0, recvHalf, recvEnd = append(recv0, m.RecvRSS[0]), append(recvHalf, m.RecvRSS[n/2]), append(recvEnd, m.RecvRSS[n-1])
		}
	}
	if len(rates) == 0 {
		return "failed"
	}
	var cell string
	switch mt {
	case msgsPerSec:
		cell = perSecond(median(rates)) + " msgs/s"
	case p50Micros:
		cell = fmt.Sprintf("p50 %.1f µs, p99 %.1f µs, p999 %.1f µs (%s round trips/s)",
			median(p50), median(p99), median(p999), perSecond(median(rates)))
	case rssMB:
		a, b, c := median(rss0), median(rssHalf), median(rssEnd)
		cell = fmt.Sprintf("RSS %.1f → %.1f → %.1f MB (first half %+.1f MB, second half %+.1f MB); %s msgs/s received",
			a, b, c, b-a, c-b, perSecond(median(rates)))
		if len(recvEnd) > 0 {
			a, b, c := median(recv0), median(recvHalf), median(recvEnd)
			cell += fmt.Sprintf("; receiver RSS %.1f → %.1f → %.1f MB (%+.1f, %+.1f MB)", a, b, c, b-a, c-b)
		}
	}
	if dropped > 0 {
		cell += fmt.Sprintf("; up to %d dropped", dropped)
	}
	return cell
}

func perSecond(r float64) string {
	switch {
	case r >= 1e6:
		return fmt.Sprintf("%.2f M", r/1e6)
	case r >= 1e3:
		return fmt.Sprintf("%.1f k", r/1e3)
	}
	return fmt.Sprintf("%.0f", r)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// printTable writes the Markdown table and, under it, what each shape
// measures.
func printTable(w io.Writer, o *options, run []shape, rows []row) {
	fmt.Fprintf(w, "dchan cross-process benchmarks: %d rounds, %v per measurement after a %v warm-up, %s %s/%s, %d CPUs\n\n",
		o.rounds, o.duration, o.warmup, runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	fmt.Fprintln(w, "| shape | candidate | result (median of the rounds) | vs reference: median (min–max) of the rounds' ratios |")
	fmt.Fprintln(w, "|---|---|---|---|")
	last := ""
	for _, r := range rows {
		shapeCell := ""
		if r.Shape != last {
			shapeCell, last = "**"+r.Shape+"**", r.Shape
		}
		ratio := "reference"
		switch {
		case r.Reference:
		case r.Rounds == 0 || r.Ratio == 0:
			ratio = "—"
		default:
			ratio = fmt.Sprintf("**%.2f×** (%.2f–%.2f)", r.Ratio, r.RatioMin, r.RatioMax)
		}
		result := r.Result
		if len(r.Errors) > 0 {
			result += " — failed: " + strings.Join(r.Errors, "; ")
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", shapeCell, r.Candidate, result, ratio)
	}
	fmt.Fprintln(w)
	for _, s := range run {
		what := "msgs/s: above 1× is faster than the reference"
		switch s.metric {
		case p50Micros:
			what = "p50 round trip: above 1× is slower than the reference"
		case rssMB:
			what = "the sender's RSS at the end: above 1× uses more memory than the reference"
		}
		fmt.Fprintf(w, "- **%s** (reference: %s; ratio of %s): %s.\n", s.name, s.cands[0].label, what, s.about)
	}
}

// printJSON writes the configuration, every measurement and the rows.
func printJSON(w io.Writer, o *options, ms []measurement, rows []row) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{
		"rounds":       o.rounds,
		"duration":     o.duration.String(),
		"warmup":       o.warmup.String(),
		"go":           runtime.Version(),
		"cpus":         runtime.NumCPU(),
		"measurements": ms,
		"rows":         rows,
	})
}
