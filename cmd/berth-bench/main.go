// Command berth-bench is a load tool for any OCI Distribution registry on
// this machine's loopback interface. It measures, in one run and on the same
// disk as the registry's data directory, the raw limits of the machine (a
// file written with fsync while hashing it with sha256, a file read from the
// page cache) and then the registry:
//
//	push1g         monolithic push of a -size blob from a deterministic stream
//	chunked        push of another -size blob in -chunk PATCHes (POST, PATCH…, PUT ?digest=)
//	pull1g         GET of the push1g blob, bytes counted and discarded
//	manifest       -clients concurrent GETs of a manifest by tag for -duration
//	manifest-auth  the same with the Authorization header read from -auth-file
//	small          -small concurrent pushes of small images (3 layers + config + manifest)
//
// With -twin (the default) every scenario is also run, right before or after,
// against a trivial registry served by this process (twin.go) with the same
// client, and each result is reported as a ratio to it: on a shared machine
// that ratio is steadier than the absolute figure.
//
// With -pid it samples the server's VmRSS every 50 ms and reports the peak of
// each scenario, and the CPU time the server used in it. It prints a
// markdown table. Every request loop is bounded in count and time, and only
// loopback addresses are ever dialled.
//
//	berth-bench -url http://127.0.0.1:5077 -pid $(pidof berth) -repeat 3 -dir /var/tmp/bench
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"
)

type options struct {
	url         string
	pid         int
	scenarios   []string
	size        int64
	dir         string
	duration    time.Duration
	clients     int
	maxRequests int64
	small       int
	smallBlob   int64
	repeat      int
	repo        string
	upload      string
	seed        uint64
	timeout     time.Duration
	keep        bool
	chunk       int64
	twin        bool
	auth        string // Authorization header value from -auth-file; never printed
}

var allScenarios = []string{"push1g", "chunked", "pull1g", "manifest", "manifest-auth", "small"}

// defaultScenarios leaves out manifest-auth, which needs -auth-file.
var defaultScenarios = []string{"push1g", "chunked", "pull1g", "manifest", "small"}

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "berth-bench:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	b, err := newBench(o, stderr)
	if err != nil {
		return err
	}
	defer b.cleanup()
	rep, err := b.runAll(ctx)
	if rep != nil {
		rep.write(stdout)
	}
	return err
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("berth-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	var scen, size, smallBlob, chunk, authFile string
	var seed int64
	fs.StringVar(&o.url, "url", "http://127.0.0.1:5077", "registry base URL (loopback only)")
	fs.IntVar(&o.pid, "pid", 0, "registry process id: sample its VmRSS every 50 ms and its CPU time per scenario")
	fs.StringVar(&scen, "scenarios", strings.Join(defaultScenarios, ","), "comma-separated scenarios: "+strings.Join(allScenarios, ","))
	fs.StringVar(&chunk, "chunk", "16MiB", "PATCH size of the chunked scenario")
	fs.BoolVar(&o.twin, "twin", true, "pair every scenario with the same scenario against a trivial in-process registry and report the ratio")
	fs.StringVar(&authFile, "auth-file", "", "file holding an Authorization header value (\"Bearer <token>\" or \"Basic <base64>\"), sent with every request to the registry; manifest-auth GETs with it, manifest without")
	fs.StringVar(&size, "size", "1GiB", "size of the push1g/pull1g blob and of the raw baseline file (B, KiB, MiB, GiB, KB, MB, GB)")
	fs.StringVar(&o.dir, "dir", "", "directory for the raw baseline file: put it on the same disk as the registry's data dir (default $TMPDIR/berth-bench)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long the manifest scenario runs")
	fs.IntVar(&o.clients, "clients", 32, "concurrent clients of the manifest scenario")
	fs.Int64Var(&o.maxRequests, "max-requests", 5_000_000, "upper bound on manifest GETs per run")
	fs.IntVar(&o.small, "small", 100, "concurrent image pushes of the small scenario")
	fs.StringVar(&smallBlob, "small-blob", "100KiB", "size of each of the 3 layers of a small image")
	fs.IntVar(&o.repeat, "repeat", 1, "run everything this many times and report medians")
	fs.StringVar(&o.repo, "repo", "berth-bench", "repository name prefix")
	fs.StringVar(&o.upload, "upload", "auto", "blob upload: post (POST ?digest= with the body), post-put (POST then PUT ?digest= with the body), or auto (probe)")
	fs.Int64Var(&seed, "seed", 0, "seed of the generated content (0: from the clock, so each run pushes new blobs)")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Minute, "bound on the whole run")
	fs.BoolVar(&o.keep, "keep", false, "keep the raw baseline file")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if o.size, err = parseSize(size); err != nil {
		return nil, fmt.Errorf("-size: %w", err)
	}
	if o.smallBlob, err = parseSize(smallBlob); err != nil {
		return nil, fmt.Errorf("-small-blob: %w", err)
	}
	if o.chunk, err = parseSize(chunk); err != nil {
		return nil, fmt.Errorf("-chunk: %w", err)
	}
	if o.size <= 0 || o.smallBlob <= 0 {
		return nil, errors.New("sizes must be positive")
	}
	if o.chunk < 64<<10 || o.size/o.chunk > 100_000 {
		return nil, errors.New("-chunk must be at least 64 KiB and at most 100000 PATCHes of -size")
	}
	if authFile != "" {
		a, err := os.ReadFile(authFile)
		if err != nil {
			return nil, fmt.Errorf("-auth-file: %w", err)
		}
		o.auth = strings.TrimSpace(string(a))
		if o.auth == "" || strings.ContainsAny(o.auth, "\r\n") {
			return nil, errors.New("-auth-file: want one line, an Authorization header value")
		}
	}
	for _, s := range strings.Split(scen, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !contains(allScenarios, s) {
			return nil, fmt.Errorf("unknown scenario %q (have %s)", s, strings.Join(allScenarios, ","))
		}
		if !contains(o.scenarios, s) {
			o.scenarios = append(o.scenarios, s)
		}
	}
	if len(o.scenarios) == 0 {
		return nil, errors.New("no scenario selected")
	}
	switch {
	case o.repeat < 1 || o.repeat > 20:
		return nil, errors.New("-repeat must be 1..20")
	case o.clients < 1 || o.clients > 1024:
		return nil, errors.New("-clients must be 1..1024")
	case o.small < 1 || o.small > 10000:
		return nil, errors.New("-small must be 1..10000")
	case o.duration <= 0 || o.duration > 10*time.Minute:
		return nil, errors.New("-duration must be in (0, 10m]")
	case o.maxRequests < 1:
		return nil, errors.New("-max-requests must be positive")
	}
	switch o.upload {
	case "auto", "post", "post-put":
	default:
		return nil, fmt.Errorf("-upload %q: want auto, post or post-put", o.upload)
	}
	if o.dir == "" {
		o.dir = os.TempDir() + "/berth-bench"
	}
	if seed == 0 {
		o.seed = uint64(time.Now().UnixNano())
	} else {
		o.seed = uint64(seed)
	}
	return o, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
