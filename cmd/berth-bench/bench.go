package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/oci"
)

const ioBuf = 1 << 20

type bench struct {
	o       *options
	log     io.Writer
	c       *client
	rawPath string
	rep     *report
	// twin (with -twin) is the trivial server every scenario is paired
	// with; tc is its client, set up like c.
	twin   *twin
	tc     *client
	failed error // the last scenario error of the current run
}

func newBench(o *options, log io.Writer) (*bench, error) {
	base, err := checkLoopback(o.url)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return nil, err
	}
	if o.pid != 0 {
		if _, err := readVmRSS(o.pid); err != nil {
			return nil, fmt.Errorf("-pid %d: %w", o.pid, err)
		}
	}
	b := &bench{
		o:       o,
		log:     log,
		c:       newClient(base, 4),
		rawPath: filepath.Join(o.dir, fmt.Sprintf("berth-bench-raw-%d.bin", os.Getpid())),
	}
	b.c.auth = o.auth
	if o.twin {
		tw, err := startTwin(filepath.Join(o.dir, fmt.Sprintf("berth-bench-twin-%d", os.Getpid())))
		if err != nil {
			return nil, fmt.Errorf("twin: %w", err)
		}
		b.twin = tw
		tbase, _ := checkLoopback(tw.url())
		b.tc = newClient(tbase, 4)
		b.tc.auth = o.auth // sent, and ignored: the same requests as to the registry
	}
	b.rep = &report{o: o, base: base.String(), fs: fsType(o.dir), loadStart: loadAvg(), start: time.Now()}
	if o.pid != 0 {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", o.pid))
		b.rep.comm = string(bytes.TrimSpace(comm))
	}
	return b, nil
}

func (b *bench) cleanup() {
	if !b.o.keep {
		_ = os.Remove(b.rawPath)
	}
	if b.twin != nil {
		if err := b.twin.close(); err != nil {
			b.logf("twin: %v", err)
		}
	}
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "berth-bench: "+format+"\n", args...)
}

func (b *bench) runAll(ctx context.Context) (*report, error) {
	if err := b.c.ping(ctx); err != nil {
		return nil, err
	}
	switch b.o.upload {
	case "post-put":
		b.c.postPut = true
	case "auto":
		if err := b.c.probeUpload(ctx, b.o.repo+"/probe", b.o.seed); err != nil {
			return nil, fmt.Errorf("upload probe: %w", err)
		}
	}
	b.rep.postPut = b.c.postPut
	if b.tc != nil {
		b.tc.postPut = b.c.postPut // the twin takes blobs the way the registry does
	}
	var failed error
	for r := 0; r < b.o.repeat; r++ {
		if err := ctx.Err(); err != nil {
			failed = err
			break
		}
		if err := b.runOnce(ctx, r); err != nil {
			failed = err
		}
	}
	b.rep.loadEnd = loadAvg()
	b.rep.end = time.Now()
	return b.rep, failed
}

// runOnce runs the raw baselines and every selected scenario once.
func (b *bench) runOnce(ctx context.Context, run int) error {
	o := b.o
	seed := o.seed + uint64(run)*1_000_003
	block := newBlock(seed)
	b.failed = nil

	needBig := contains(o.scenarios, "push1g") || contains(o.scenarios, "pull1g")
	var bigDigest digest.Digest
	var rawWrite, rawRead, tcpW, tcpR float64
	if needBig {
		b.logf("run %d: raw baselines in %s (%s)", run+1, o.dir, fmtBytes(o.size))
		// Each raw limit is the best of two tries: the disk and the page
		// cache are shared with the rest of the machine, and noise only ever
		// makes a try slower.
		load := loadAvg()
		var dur time.Duration
		for try := 0; try < 2; try++ {
			syscall.Sync() // start from a clean page cache: no writeback of earlier runs
			d, t, err := writeHashSync(b.rawPath, newStream(block, 1, o.size), o.size)
			if err != nil {
				return fmt.Errorf("raw write: %w", err)
			}
			bigDigest = d
			if try == 0 || t < dur {
				dur = t
			}
		}
		rawWrite = mbps(o.size, dur)
		b.rep.add(run, result{name: "raw-write", load: load, m: map[string]float64{"mbps": rawWrite, "secs": dur.Seconds()}})

		load = loadAvg()
		if _, err := readFile(b.rawPath, false); err != nil { // warm the page cache
			return fmt.Errorf("raw read: %w", err)
		}
		for try := 0; try < 2; try++ {
			t, err := readFile(b.rawPath, false)
			if err != nil {
				return fmt.Errorf("raw read: %w", err)
			}
			if try == 0 || t < dur {
				dur = t
			}
		}
		rawRead = mbps(o.size, dur)
		b.rep.add(run, result{name: "raw-read", load: load, m: map[string]float64{"mbps": rawRead, "secs": dur.Seconds()}})

		load = loadAvg()
		dur, err := readFile(b.rawPath, true)
		if err != nil {
			return fmt.Errorf("raw read+hash: %w", err)
		}
		b.rep.add(run, result{name: "raw-readhash", load: load, m: map[string]float64{"mbps": mbps(o.size, dur), "secs": dur.Seconds()}})

		load = loadAvg()
		n := min(o.size, 256<<20)
		dur = hashMemory(block, n)
		b.rep.add(run, result{name: "raw-sha256", load: load, m: map[string]float64{"mbps": mbps(n, dur)}})

		// The same two transfers through a loopback TCP socket, in this
		// process: what any server on this machine could reach at best.
		load = loadAvg()
		dur, err = tcpPush(ctx, newStream(block, 1, o.size), o.size, bigDigest)
		if err != nil {
			return fmt.Errorf("raw loopback push: %w", err)
		}
		tcpW = mbps(o.size, dur)
		b.rep.add(run, result{name: "tcp-push", load: load, m: map[string]float64{"mbps": tcpW}})
		load = loadAvg()
		dur, err = tcpPull(ctx, b.rawPath, o.size, true)
		if err != nil {
			return fmt.Errorf("raw loopback pull: %w", err)
		}
		tcpR = mbps(o.size, dur)
		b.rep.add(run, result{name: "tcp-pull", load: load, m: map[string]float64{"mbps": tcpR}})
		load = loadAvg()
		dur, err = tcpPull(ctx, b.rawPath, o.size, false)
		if err != nil {
			return fmt.Errorf("raw loopback pull: %w", err)
		}
		// On loopback, copying through a buffer can beat sendfile: the
		// pull's ceiling is the better of the two.
		tcpR = max(tcpR, mbps(o.size, dur))
		b.rep.add(run, result{name: "tcp-pull-copy", load: load, m: map[string]float64{"mbps": mbps(o.size, dur)}})
	}

	bigRepo := o.repo + "/big"
	if contains(o.scenarios, "push1g") {
		b.logf("run %d: push1g %s %s", run+1, fmtBytes(o.size), bigDigest)
		b.pair(run, "push1g", "mbps", func(t target) (map[string]float64, error) {
			b.recycle(block)
			return t.measure(b, func() (map[string]float64, error) {
				body := &timedReader{r: newStream(block, 1, o.size), size: o.size}
				start := time.Now()
				if err := t.c.pushBlob(ctx, bigRepo, bigDigest, o.size, body); err != nil {
					return nil, err
				}
				dur := time.Since(start)
				v := mbps(o.size, dur)
				m := map[string]float64{"mbps": v, "secs": dur.Seconds(), "ratio": v / rawWrite, "ratio_tcp": v / tcpW}
				if !body.last.IsZero() {
					// What the server did after it had every byte: fsync,
					// rename, bookkeeping.
					m["tail"] = start.Add(dur).Sub(body.last).Seconds()
				}
				return m, nil
			})
		})
	}

	if contains(o.scenarios, "chunked") {
		// A blob of its own (stream 3), so no registry can skip the
		// upload as one it already has; its digest is computed untimed.
		h := sha256.New()
		if _, err := io.Copy(h, newStream(block, 3, o.size)); err != nil {
			return err
		}
		chunkDigest := digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(h.Sum(nil)))
		b.logf("run %d: chunked %s in %s PATCHes %s", run+1, fmtBytes(o.size), fmtBytes(o.chunk), chunkDigest)
		b.pair(run, "chunked", "mbps", func(t target) (map[string]float64, error) {
			b.recycle(block)
			return t.measure(b, func() (map[string]float64, error) {
				start := time.Now()
				n, err := t.c.pushChunked(ctx, o.repo+"/chunked", chunkDigest, o.size, o.chunk, newStream(block, 3, o.size))
				if err != nil {
					return nil, err
				}
				dur := time.Since(start)
				v := mbps(o.size, dur)
				return map[string]float64{"mbps": v, "secs": dur.Seconds(), "ratio": v / rawWrite, "patches": float64(n)}, nil
			})
		})
	}

	if contains(o.scenarios, "pull1g") {
		b.logf("run %d: pull1g", run+1)
		b.pair(run, "pull1g", "mbps", func(t target) (map[string]float64, error) {
			ok, err := t.c.blobExists(ctx, bigRepo, bigDigest)
			if err == nil && !ok {
				b.logf("run %d: %spushing the blob first (untimed)", run+1, t.prefix)
				err = t.c.pushBlob(ctx, bigRepo, bigDigest, o.size, newStream(block, 1, o.size))
			}
			if err != nil {
				return nil, err
			}
			return t.measure(b, func() (map[string]float64, error) {
				start := time.Now()
				if err := pull(ctx, t.c, bigRepo, bigDigest, o.size); err != nil {
					return nil, err
				}
				dur := time.Since(start)
				v := mbps(o.size, dur)
				return map[string]float64{"mbps": v, "secs": dur.Seconds(), "ratio": v / rawRead, "ratio_tcp": v / tcpR}, nil
			})
		})
	}

	for _, name := range []string{"manifest", "manifest-auth"} {
		if !contains(o.scenarios, name) {
			continue
		}
		b.logf("run %d: %s, %d clients for %s", run+1, name, o.clients, o.duration)
		b.pair(run, name, "rps", func(t target) (map[string]float64, error) {
			return b.manifest(ctx, t, block, seed, name == "manifest-auth")
		})
	}

	if contains(o.scenarios, "small") {
		b.logf("run %d: small, %d concurrent image pushes", run+1, o.small)
		images := b.smallImages(block, seed)
		b.pair(run, "small", "pps", func(t target) (map[string]float64, error) {
			return t.measure(b, func() (map[string]float64, error) {
				return b.smallPushes(ctx, t.c, images, seed, t.prefix)
			})
		})
	}
	if b.twin != nil {
		if err := b.twin.dropBlobs(); err != nil {
			b.logf("twin: %v", err)
		}
	}
	return b.failed
}

// recycle writes -size bytes to a scratch file and deletes it, then syncs,
// right before a push, so that every push (the registry's and the twin's,
// whichever goes first) writes into page-cache memory that was just freed,
// as the raw write does. On a VM, page-cache pages the guest has not touched
// lately can cost ten times more kernel time to fill (the host backs them
// on first touch): see docs/benchmarks.md.
func (b *bench) recycle(block []byte) {
	_ = os.Remove(b.rawPath)
	path := b.rawPath + ".recycle"
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err == nil {
		_, err = io.Copy(f, newStream(block, 99, b.o.size))
		f.Close()
	}
	if err != nil {
		b.logf("recycle: %v", err)
	}
	_ = os.Remove(path)
	syscall.Sync()
}

// target is what a scenario runs against: the registry, or the twin.
type target struct {
	prefix string // "" for the registry, "twin-" for the twin
	c      *client
	pid    int // sampled for RSS and CPU; 0: not sampled
}

// order is the registry and (with -twin) the twin, in the order this run
// measures them: the registry first in odd runs, the twin first in even
// ones, so neither always gets the page cache the other just freed.
func (b *bench) order(run int) []target {
	reg := target{c: b.c, pid: b.o.pid}
	if b.twin == nil {
		return []target{reg}
	}
	tw := target{prefix: "twin-", c: b.tc}
	if run%2 == 1 {
		return []target{tw, reg}
	}
	return []target{reg, tw}
}

// pair runs one scenario against the registry and the twin, one right after
// the other with the same client, and records both and their ratio (of
// metric key, per run) in the registry's result.
func (b *bench) pair(run int, name, key string, fn func(t target) (map[string]float64, error)) {
	var reg, tw map[string]float64
	var res []result
	for _, t := range b.order(run) {
		load := loadAvg()
		m, err := fn(t)
		if err != nil {
			b.logf("run %d: %s%s: %v", run+1, t.prefix, name, err)
			res = append(res, result{name: t.prefix + name, err: err.Error(), load: load})
			b.failed = err
			continue
		}
		if t.prefix == "" {
			reg = m
		} else {
			tw = m
		}
		res = append(res, result{name: t.prefix + name, load: load, m: m})
	}
	if reg != nil && tw != nil && tw[key] > 0 {
		reg["twin"] = reg[key] / tw[key]
	}
	for _, r := range res {
		b.rep.add(run, r)
	}
}

// measure runs fn while sampling the target's RSS and CPU time.
func (t target) measure(b *bench, fn func() (map[string]float64, error)) (map[string]float64, error) {
	var s *rssSampler
	var cpu0 time.Duration
	if t.pid != 0 {
		cpu0, _ = readCPU(t.pid)
		s = startRSS(t.pid, 50*time.Millisecond)
	}
	m, err := fn()
	if s != nil {
		peak, n := s.finish()
		cpu1, _ := readCPU(t.pid)
		if m != nil {
			m["rss"] = float64(peak)
			m["rss_samples"] = float64(n)
			m["cpu"] = (cpu1 - cpu0).Seconds()
		}
	}
	return m, err
}

// pull GETs the blob and counts its bytes into a reused buffer.
func pull(ctx context.Context, c *client, repo string, d digest.Digest, size int64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/v2/"+repo+"/blobs/"+d.String()), nil)
	if err != nil {
		return err
	}
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.ContentLength >= 0 && resp.ContentLength != size {
		return fmt.Errorf("Content-Length %d, want %d", resp.ContentLength, size)
	}
	buf := make([]byte, ioBuf)
	var n int64
	for {
		m, err := resp.Body.Read(buf)
		n += int64(m)
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("after %d bytes: %w", n, err)
		}
		if n > size {
			return fmt.Errorf("body longer than %d bytes", size)
		}
	}
	if n != size {
		return fmt.Errorf("got %d bytes, want %d", n, size)
	}
	return nil
}

// manifest pushes a small image, then o.clients clients GET its manifest by
// tag, over kept-alive connections, until o.duration has passed or
// o.maxRequests were sent.
func (b *bench) manifest(ctx context.Context, t target, block []byte, seed uint64, auth bool) (map[string]float64, error) {
	o := b.o
	repo := o.repo + "/manifest"
	layer := make([]byte, 64<<10)
	if _, err := io.ReadFull(newStream(block, 2, int64(len(layer))), layer); err != nil {
		return nil, err
	}
	im := makeImage([][]byte{layer}, fmt.Sprintf("manifest-%d", seed))
	if err := t.c.pushImage(ctx, repo, "v1", im); err != nil {
		return nil, fmt.Errorf("push image: %w", err)
	}
	got, err := t.c.getManifest(ctx, repo, "v1")
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(got, im.manifest) {
		return nil, errors.New("manifest read back differs from the one pushed")
	}

	c := newClient(t.c.base, o.clients)
	defer c.hc.CloseIdleConnections()
	u := c.url("/v2/" + repo + "/manifests/v1")
	authz := ""
	if auth {
		authz = t.c.auth
		if authz == "" {
			return nil, errors.New("manifest-auth needs -auth-file")
		}
	}
	// The loop is bounded in time whatever the server does.
	lctx, cancel := context.WithTimeout(ctx, o.duration+30*time.Second)
	defer cancel()
	get := func() error {
		req, err := http.NewRequestWithContext(lctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Accept", oci.MediaTypeImageManifest)
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %s", resp.Status)
		}
		return nil
	}
	// Open every connection before the clock starts.
	var wg sync.WaitGroup
	warmErr := make([]error, o.clients)
	for i := range o.clients {
		wg.Go(func() { warmErr[i] = get() })
	}
	wg.Wait()
	if err := errors.Join(warmErr...); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}

	return t.measure(b, func() (map[string]float64, error) {
		return b.manifestLoop(lctx, get)
	})
}

// manifestLoop runs o.clients loops of get until o.duration has passed or
// o.maxRequests were sent.
func (b *bench) manifestLoop(lctx context.Context, get func() error) (map[string]float64, error) {
	o := b.o
	var wg sync.WaitGroup
	var sent, errs atomic.Int64
	var firstErr atomic.Value
	lats := make([][]time.Duration, o.clients)
	ends := make([]time.Time, o.clients)
	start := time.Now()
	deadline := start.Add(o.duration)
	for i := range o.clients {
		wg.Go(func() {
			l := make([]time.Duration, 0, 1<<14)
			for time.Now().Before(deadline) && sent.Add(1) <= o.maxRequests {
				t0 := time.Now()
				err := get()
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					if lctx.Err() != nil {
						break
					}
					continue
				}
				l = append(l, time.Since(t0))
			}
			lats[i] = l
			ends[i] = time.Now()
		})
	}
	wg.Wait()
	end := start
	for _, e := range ends {
		if e.After(end) {
			end = e
		}
	}
	all := slices.Concat(lats...)
	slices.Sort(all)
	elapsed := end.Sub(start)
	m := map[string]float64{
		"rps":    float64(len(all)) / elapsed.Seconds(),
		"ok":     float64(len(all)),
		"errors": float64(errs.Load()),
		"secs":   elapsed.Seconds(),
		"p50":    pct(all, 50).Seconds() * 1000,
		"p99":    pct(all, 99).Seconds() * 1000,
	}
	if e := firstErr.Load(); e != nil {
		b.logf("manifest: %d errors, first: %s", errs.Load(), e)
	}
	return m, nil
}

// smallImages builds o.small images of 3 layers of o.smallBlob bytes each,
// every layer distinct, outside the timed part.
func (b *bench) smallImages(block []byte, seed uint64) []image {
	o := b.o
	ims := make([]image, o.small)
	for i := range ims {
		var layers [][]byte
		for j := range 3 {
			l := make([]byte, o.smallBlob)
			_, _ = io.ReadFull(newStream(block, uint64(1000+3*i+j), o.smallBlob), l)
			layers = append(layers, l)
		}
		ims[i] = makeImage(layers, fmt.Sprintf("small-%d-%d", seed, i))
	}
	return ims
}

// smallPushes pushes every image at once, each into its own repository.
func (b *bench) smallPushes(ctx context.Context, tc *client, ims []image, seed uint64, prefix string) (map[string]float64, error) {
	c := newClient(tc.base, len(ims))
	c.postPut = tc.postPut
	c.auth = tc.auth
	defer c.hc.CloseIdleConnections()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	lats := make([]time.Duration, len(ims))
	errs := make([]error, len(ims))
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range ims {
		wg.Go(func() {
			<-gate
			t0 := time.Now()
			repo := fmt.Sprintf("%s/%ssmall-%d-%d", b.o.repo, prefix, seed%100000, i)
			errs[i] = c.pushImage(pctx, repo, "v1", ims[i])
			lats[i] = time.Since(t0)
		})
	}
	start := time.Now()
	close(gate)
	wg.Wait()
	elapsed := time.Since(start)
	nerr := 0
	var ok []time.Duration
	for i, err := range errs {
		if err != nil {
			if nerr == 0 {
				b.logf("small: first error: %v", err)
			}
			nerr++
			continue
		}
		ok = append(ok, lats[i])
	}
	slices.Sort(ok)
	return map[string]float64{
		"secs":   elapsed.Seconds(),
		"pps":    float64(len(ok)) / elapsed.Seconds(),
		"errors": float64(nerr),
		"p50":    pct(ok, 50).Seconds() * 1000,
		"p99":    pct(ok, 99).Seconds() * 1000,
	}, nil
}

func mbps(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / 1e6 / d.Seconds()
}

// pct is the p-th percentile of sorted (nearest rank).
func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(0, min(len(sorted)-1, i-1))]
}
