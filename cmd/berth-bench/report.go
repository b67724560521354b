package main

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"time"
)

// result is one scenario of one run.
type result struct {
	name string
	load string // 1/5/15-minute load average when it started
	m    map[string]float64
	err  string
}

type report struct {
	o         *options
	base      string
	fs        string
	comm      string
	postPut   bool
	loadStart string
	loadEnd   string
	start     time.Time
	end       time.Time
	runs      [][]result
}

func (r *report) add(run int, res result) {
	for len(r.runs) <= run {
		r.runs = append(r.runs, nil)
	}
	r.runs[run] = append(r.runs[run], res)
}

var rowOrder = []string{"raw-write", "raw-read", "raw-readhash", "raw-sha256", "tcp-push", "tcp-pull", "tcp-pull-copy",
	"push1g", "twin-push1g", "chunked", "twin-chunked", "pull1g", "twin-pull1g",
	"manifest", "twin-manifest", "manifest-auth", "twin-manifest-auth", "small", "twin-small"}

// median of metric key over the successful runs of a row.
func (r *report) median(name, key string) (float64, bool) {
	var v []float64
	for _, run := range r.runs {
		for _, res := range run {
			if res.name == name && res.err == "" {
				if x, ok := res.m[key]; ok {
					v = append(v, x)
				}
			}
		}
	}
	if len(v) == 0 {
		return 0, false
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2], true
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2, true
}

func (r *report) has(name string) (ok, failed int) {
	for _, run := range r.runs {
		for _, res := range run {
			if res.name == name {
				if res.err == "" {
					ok++
				} else {
					failed++
				}
			}
		}
	}
	return
}

func fmtMiB(bytes float64) string { return fmt.Sprintf("%.0f MiB", bytes/(1<<20)) }

func (r *report) write(w io.Writer) {
	o := r.o
	upload := "`POST ?digest=` with the body (one request)"
	if r.postPut {
		upload = "`POST` then `PUT ?digest=` with the body"
	}
	server := "not sampled (no -pid)"
	if o.pid != 0 {
		server = fmt.Sprintf("pid %d (%s), VmRSS sampled every 50 ms", o.pid, r.comm)
	}
	fmt.Fprintf(w, "### berth-bench against %s\n\n", r.base)
	fmt.Fprintf(w, "- %s, %d run(s), medians shown; %d CPUs, bench built with %s\n", r.start.Format(time.RFC3339), len(r.runs), runtime.NumCPU(), runtime.Version())
	fmt.Fprintf(w, "- blob %s; raw baseline file in `%s` (%s); blob upload: %s\n", fmtBytes(o.size), o.dir, r.fs, upload)
	fmt.Fprintf(w, "- server: %s\n", server)
	fmt.Fprintf(w, "- load average (1/5/15 min): %s at start, %s at end\n\n", r.loadStart, r.loadEnd)

	fmt.Fprintln(w, "| scenario | result | ÷ twin | raw limit | ratio | peak RSS | server CPU | ratio to loopback ref |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	rawW, _ := r.median("raw-write", "mbps")
	rawR, _ := r.median("raw-read", "mbps")
	for _, name := range rowOrder {
		ok, failed := r.has(name)
		if ok+failed == 0 {
			continue
		}
		label, result, limit, ratio := r.describe(name, rawW, rawR)
		if ok == 0 {
			result = "FAILED"
			ratio = ""
		} else if failed > 0 {
			result += fmt.Sprintf(" (%d run(s) failed)", failed)
		}
		rss, cpu, rtcp, twin := "", "", "", ""
		if v, ok := r.median(name, "twin"); ok {
			twin = fmt.Sprintf("**%.2f**", v)
		}
		if v, ok := r.median(name, "ratio_tcp"); ok {
			rtcp = fmt.Sprintf("%.0f %%", 100*v)
		}
		if v, ok := r.median(name, "rss"); ok {
			rss = fmtMiB(v)
		}
		if v, ok := r.median(name, "cpu"); ok {
			cpu = fmt.Sprintf("%.2f s", v)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", label, result, twin, limit, ratio, rss, cpu, rtcp)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "÷ twin: the registry's throughput (MB/s, requests/s or pushes/s) over the twin's in the same run, measured right before or after it with the same client (median of the per-run ratios); the twin is a trivial net/http server inside berth-bench (manifests from memory, uploads hashed and fsynced once at commit, blobs with http.ServeContent), its rows start with \"twin:\".")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "MB = 10^6 bytes. Raw write and raw read: best of two tries per run. Ratio: the scenario's throughput over its raw limit measured in the same run (median of the per-run ratios). Server CPU: user+system time the server used during the scenario. Loopback refs: the same bytes through a plain loopback TCP socket inside berth-bench (push: the receiver only hashes; pull: the sender uses sendfile, or read/write through a 32 KiB buffer, from the page cache), i.e. the CPU ceiling of moving the bytes between two processes on these 2 cores without HTTP; the pull is compared with the better of its two.")
	fmt.Fprintln(w)

	fmt.Fprintln(w, "<details><summary>every run</summary>")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| run | scenario | result | peak RSS | load at start |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for i, run := range r.runs {
		for _, res := range run {
			rss := ""
			if v, ok := res.m["rss"]; ok {
				rss = fmtMiB(v)
			}
			fmt.Fprintf(w, "| %d | %s | %s | %s | %s |\n", i+1, res.name, one(res), rss, res.load)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "</details>")
}

// describe returns a row's label, median result, raw limit and ratio.
func (r *report) describe(name string, rawW, rawR float64) (label, result, limit, ratio string) {
	if base, ok := strings.CutPrefix(name, "twin-"); ok {
		label, _, _, _ = r.describe(base, rawW, rawR)
		_, result, limit, ratio = r.describeAs(base, name, rawW, rawR)
		return "twin: " + label, result, limit, ratio
	}
	return r.describeAs(name, name, rawW, rawR)
}

// describeAs describes the row name with the medians of the results of row.
func (r *report) describeAs(name, row string, rawW, rawR float64) (label, result, limit, ratio string) {
	o := r.o
	med := func(k string) float64 { v, _ := r.median(row, k); return v }
	switch name {
	case "raw-write":
		return "raw: write + sha256 + fsync (" + fmtBytes(o.size) + ")", fmt.Sprintf("%.0f MB/s", med("mbps")), "", ""
	case "raw-read":
		return "raw: page-cache read (" + fmtBytes(o.size) + ")", fmt.Sprintf("%.0f MB/s", med("mbps")), "", ""
	case "raw-readhash":
		return "raw: page-cache read + sha256", fmt.Sprintf("%.0f MB/s", med("mbps")), "", ""
	case "raw-sha256":
		return "raw: sha256 of memory", fmt.Sprintf("%.0f MB/s", med("mbps")), "", ""
	case "tcp-push":
		return "ref: loopback TCP → sha256 (no disk)", fmt.Sprintf("%.0f MB/s", med("mbps")), "", ""
	case "tcp-pull":
		return "ref: loopback TCP, sendfile from page cache", fmt.Sprintf("%.0f MB/s", med("mbps")), "", ""
	case "tcp-pull-copy":
		return "ref: loopback TCP, read/write copy from page cache", fmt.Sprintf("%.0f MB/s", med("mbps")), "", ""
	case "push1g":
		res := fmt.Sprintf("%.0f MB/s (%.2f s", med("mbps"), med("secs"))
		if tail, ok := r.median(row, "tail"); ok {
			res += fmt.Sprintf(", of which %.2f s after the last byte was sent", tail)
		}
		return "push1g: monolithic push of " + fmtBytes(o.size), res + ")",
			fmt.Sprintf("%.0f MB/s (write+sha256+fsync)", rawW),
			fmt.Sprintf("%.0f %%", 100*med("ratio"))
	case "chunked":
		return fmt.Sprintf("chunked: push of %s in %s PATCHes", fmtBytes(o.size), fmtBytes(o.chunk)),
			fmt.Sprintf("%.0f MB/s (%.2f s, %.0f PATCHes)", med("mbps"), med("secs"), med("patches")),
			fmt.Sprintf("%.0f MB/s (write+sha256+fsync)", rawW),
			fmt.Sprintf("%.0f %%", 100*med("ratio"))
	case "pull1g":
		return "pull1g: GET of " + fmtBytes(o.size),
			fmt.Sprintf("%.0f MB/s (%.2f s)", med("mbps"), med("secs")),
			fmt.Sprintf("%.0f MB/s (page-cache read)", rawR),
			fmt.Sprintf("%.0f %%", 100*med("ratio"))
	case "manifest", "manifest-auth":
		how := "anonymous"
		if name == "manifest-auth" {
			how = "with -auth-file credentials"
		}
		return fmt.Sprintf("%s: %d clients GET by tag, %s, %s", name, o.clients, o.duration, how),
			fmt.Sprintf("%.0f req/s, p50 %.2f ms, p99 %.2f ms, %.0f errors", med("rps"), med("p50"), med("p99"), med("errors")),
			"", ""
	case "small":
		return fmt.Sprintf("small: %d concurrent pushes of 3×%s + config + manifest", o.small, fmtBytes(o.smallBlob)),
			fmt.Sprintf("%.2f s total, %.0f pushes/s, push p50 %.0f ms, p99 %.0f ms, %.0f errors", med("secs"), med("pps"), med("p50"), med("p99"), med("errors")),
			"", ""
	}
	return name, "", "", ""
}

// one prints a single run's result.
func one(res result) string {
	if res.err != "" {
		return "FAILED: " + strings.ReplaceAll(res.err, "|", "/")
	}
	m := res.m
	name, _ := strings.CutPrefix(res.name, "twin-")
	switch name {
	case "raw-write", "raw-read", "raw-readhash", "raw-sha256", "tcp-push", "tcp-pull", "tcp-pull-copy":
		return fmt.Sprintf("%.0f MB/s", m["mbps"])
	case "push1g", "pull1g", "chunked":
		s := fmt.Sprintf("%.0f MB/s, %.0f %% of raw", m["mbps"], 100*m["ratio"])
		if v, ok := m["twin"]; ok {
			s += fmt.Sprintf(", %.2f × twin", v)
		}
		if tail, ok := m["tail"]; ok {
			s += fmt.Sprintf(", %.2f s after the last byte", tail)
		}
		if cpu, ok := m["cpu"]; ok {
			s += fmt.Sprintf(", server CPU %.2f s", cpu)
		}
		return s
	case "manifest", "manifest-auth":
		s := fmt.Sprintf("%.0f req/s, p50 %.2f ms, p99 %.2f ms, %.0f errors", m["rps"], m["p50"], m["p99"], m["errors"])
		if v, ok := m["twin"]; ok {
			s += fmt.Sprintf(", %.2f × twin", v)
		}
		return s
	case "small":
		s := fmt.Sprintf("%.2f s, %.0f pushes/s, %.0f errors", m["secs"], m["pps"], m["errors"])
		if v, ok := m["twin"]; ok {
			s += fmt.Sprintf(", %.2f × twin", v)
		}
		return s
	}
	return ""
}
