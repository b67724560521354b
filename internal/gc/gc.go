// Package gc is berth's online mark-and-sweep garbage collector. It runs
// against any storage backend that implements storage.Collector, while the
// registry keeps serving pushes and pulls.
//
//	rep, err := gc.Run(ctx, store, gc.Options{GracePeriod: time.Hour, DryRun: true})
//	fmt.Println(rep.Blobs, rep.Bytes) // what a real run would free
//
// Mark: in every repository, the live manifests are every linked manifest
// (or, with DeleteUntagged, the tagged ones and those pushed within the grace
// period), the manifests a live index lists, and the referrers of a live
// manifest, repeatedly. Everything a live manifest refers to (config, layers,
// index entries, its own bytes) is live.
//
// Sweep: blob content that is not live and was last used before now minus
// GracePeriod is deleted; so are (with DeleteUntagged) untagged manifests that
// are not live, and repository links to content that no longer exists. On a
// backend that stages writes through temporary files (storage.TempCollector),
// those a crash left behind are removed once they are older than the grace
// period (and at least MinTempAge).
//
// Safety while pushes continue rests on the backends (storage.Collector):
// every request that relies on content staying marks it used (commit, mount,
// manifest push for each reference), and every delete re-checks the "last
// used" time against the cutoff right before it removes anything. Content
// uploaded for a manifest that is not pushed yet is protected by the grace
// period alone, so GracePeriod MUST exceed the longest time a client takes
// between uploading a blob and pushing the manifest that refers to it.
// docs/gc.md explains the reasoning.
package gc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/oci"
	"github.com/berth-registry/berth/internal/storage"
)

// Store is what the collector needs of a backend.
type Store interface {
	storage.Collector
	ListRepositories(ctx context.Context, after string, n int) ([]string, error)
	GetManifest(ctx context.Context, repo string, d digest.Digest) (storage.Manifest, error)
}

// DefaultGracePeriod is the grace period when none is configured.
const DefaultGracePeriod = time.Hour

// Options configures a run.
type Options struct {
	// GracePeriod: nothing used more recently than this is collected.
	GracePeriod time.Duration
	// DeleteUntagged also unlinks manifests that no tag, no live index and
	// no live subject keeps, once they are older than GracePeriod. Off, every
	// manifest linked in a repository is kept (pushes by digest stay).
	DeleteUntagged bool
	// DryRun computes what a run would free and deletes nothing.
	DryRun bool
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives one line per run and a debug line per deletion.
	Logger *slog.Logger
	// Concurrency bounds the repositories scanned and the deletions made at
	// once (default 8): on S3 each is a few requests of latency.
	Concurrency int
}

// DefaultConcurrency is Options.Concurrency when not set.
const DefaultConcurrency = 8

// MinTempAge is how long a temporary file is left alone whatever the grace
// period: with a grace period of 0 a write in progress is still not disturbed.
const MinTempAge = time.Minute

// Report is the outcome of a run. In a dry run the counts are what a real
// run would delete.
type Report struct {
	DryRun       bool
	Repositories int   // repositories scanned
	Manifests    int   // untagged manifests unlinked
	Blobs        int   // blob contents deleted
	Bytes        int64 // bytes of those contents
	Links        int   // repository links to deleted content removed
	// TempFiles and TempBytes count the stale temporary files removed (see
	// storage.TempCollector), TempFileList lists them.
	TempFiles    int
	TempBytes    int64
	TempFileList []storage.TempFile
	// Kept counts candidates a concurrent request used after the mark; they
	// stay (a real run only).
	Kept     int
	Started  time.Time
	Duration time.Duration
}

// String is the one-line summary berth gc prints.
func (r Report) String() string {
	verb := "freed"
	if r.DryRun {
		verb = "would free"
	}
	return fmt.Sprintf("%s %d blobs (%d bytes), %d untagged manifests, %d repository links, %d stale temp files (%d bytes); %d repositories scanned, %d kept (in use), %s",
		verb, r.Blobs, r.Bytes, r.Manifests, r.Links, r.TempFiles, r.TempBytes, r.Repositories, r.Kept, r.Duration.Round(time.Millisecond))
}

type repoDigest struct {
	repo string
	d    digest.Digest
}

type run struct {
	st     Store
	o      Options
	cutoff time.Time
	log    *slog.Logger

	mu   sync.Mutex
	live map[digest.Digest]struct{}
}

func (r *run) mark(ds ...digest.Digest) {
	r.mu.Lock()
	for _, d := range ds {
		r.live[d] = struct{}{}
	}
	r.mu.Unlock()
}

// parallel calls fn(i) for i in [0, n) on at most o.Concurrency goroutines
// and returns the first error (the others still finish).
func (r *run) parallel(ctx context.Context, n int, fn func(i int) error) error {
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
		next  atomic.Int64
	)
	for range min(r.o.Concurrency, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		})
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// Run collects garbage once.
func Run(ctx context.Context, st Store, o Options) (Report, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.GracePeriod < 0 {
		return Report{}, errors.New("gc: negative grace period")
	}
	r := &run{st: st, o: o, log: o.Logger, live: map[digest.Digest]struct{}{}}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	start := o.Now()
	r.cutoff = start.Add(-o.GracePeriod)
	rep := Report{DryRun: o.DryRun, Started: start}

	// Mark.
	repos, err := st.ListRepositories(ctx, "", -1)
	if err != nil {
		return rep, fmt.Errorf("gc: list repositories: %w", err)
	}
	type repoLink struct {
		repo string
		link storage.BlobLink
	}
	var (
		untagged []repoDigest
		links    []repoLink
		listMu   sync.Mutex
	)
	err = r.parallel(ctx, len(repos), func(i int) error {
		repo := repos[i]
		scan, err := st.ScanRepository(ctx, repo)
		if err != nil {
			return fmt.Errorf("gc: scan %s: %w", repo, err)
		}
		dead, err := r.markRepository(ctx, repo, scan)
		if err != nil {
			return err
		}
		listMu.Lock()
		defer listMu.Unlock()
		rep.Repositories++
		for _, d := range dead {
			untagged = append(untagged, repoDigest{repo, d})
		}
		for _, l := range scan.Blobs {
			links = append(links, repoLink{repo, l})
		}
		return nil
	})
	if err != nil {
		return rep, err
	}

	// Untagged manifests first: one that a push claims meanwhile stays, and
	// so does everything it refers to.
	for _, u := range untagged {
		if o.DryRun {
			rep.Manifests++
			continue
		}
		err := st.DeleteUntaggedManifest(ctx, u.repo, u.d, r.cutoff)
		switch {
		case err == nil:
			rep.Manifests++
			r.log.Debug("gc: unlinked untagged manifest", "repository", u.repo, "digest", u.d)
		case errors.Is(err, storage.ErrManifestUnknown):
		default:
			if !errors.Is(err, storage.ErrInUse) {
				r.log.Warn("gc: unlinking untagged manifest failed; keeping it", "repository", u.repo, "digest", u.d, "err", err)
			}
			rep.Kept++
			if err := r.markManifest(ctx, u.repo, u.d, nil); err != nil {
				return rep, err
			}
		}
	}

	// Sweep blob content.
	var candidates []storage.StoredBlob
	stored := map[digest.Digest]struct{}{}
	err = st.WalkBlobs(ctx, func(b storage.StoredBlob) error {
		stored[b.Digest] = struct{}{}
		if _, ok := r.live[b.Digest]; !ok && b.LastUsed.Before(r.cutoff) {
			candidates = append(candidates, b)
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("gc: walk blobs: %w", err)
	}
	if o.DryRun {
		for _, b := range candidates {
			rep.Blobs++
			rep.Bytes += b.Size
			delete(stored, b.Digest)
		}
	} else {
		var repMu sync.Mutex
		err = r.parallel(ctx, len(candidates), func(i int) error {
			b := candidates[i]
			n, err := st.DeleteBlobContent(ctx, b.Digest, r.cutoff)
			repMu.Lock()
			defer repMu.Unlock()
			switch {
			case err == nil:
				rep.Blobs++
				rep.Bytes += n
				delete(stored, b.Digest)
				r.log.Debug("gc: deleted blob", "digest", b.Digest, "size", n)
			case errors.Is(err, storage.ErrInUse):
				rep.Kept++
			default:
				return fmt.Errorf("gc: delete blob %s: %w", b.Digest, err)
			}
			return nil
		})
		if err != nil {
			return rep, err
		}
	}

	// Links to content that is gone.
	var dangling []repoLink
	for _, l := range links {
		if _, ok := stored[l.link.Digest]; !ok && l.link.LastUsed.Before(r.cutoff) {
			dangling = append(dangling, l)
		}
	}
	if o.DryRun {
		rep.Links = len(dangling)
	} else {
		var repMu sync.Mutex
		err = r.parallel(ctx, len(dangling), func(i int) error {
			l := dangling[i]
			err := st.DeleteBlobLink(ctx, l.repo, l.link.Digest, r.cutoff)
			repMu.Lock()
			defer repMu.Unlock()
			switch {
			case err == nil:
				rep.Links++
			case errors.Is(err, storage.ErrInUse):
				rep.Kept++
			default:
				return fmt.Errorf("gc: delete link %s in %s: %w", l.link.Digest, l.repo, err)
			}
			return nil
		})
		if err != nil {
			return rep, err
		}
	}

	if tc, ok := st.(storage.TempCollector); ok {
		if err := r.sweepTempFiles(ctx, tc, start, &rep); err != nil {
			return rep, err
		}
	}

	rep.Duration = o.Now().Sub(start)
	r.log.Info("garbage collection", "dry_run", o.DryRun, "blobs", rep.Blobs, "bytes", rep.Bytes,
		"untagged_manifests", rep.Manifests, "links", rep.Links, "temp_files", rep.TempFiles, "temp_bytes", rep.TempBytes, "kept", rep.Kept,
		"repositories", rep.Repositories, "grace_period", o.GracePeriod, "duration", rep.Duration)
	return rep, nil
}

// sweepTempFiles removes the temporary files not written to since before
// the cutoff (and MinTempAge before start).
func (r *run) sweepTempFiles(ctx context.Context, tc storage.TempCollector, start time.Time, rep *Report) error {
	cutoff := r.cutoff
	if t := start.Add(-MinTempAge); t.Before(cutoff) {
		cutoff = t
	}
	var stale []storage.TempFile
	err := tc.WalkTempFiles(ctx, func(f storage.TempFile) error {
		if f.Modified.Before(cutoff) {
			stale = append(stale, f)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("gc: walk temp files: %w", err)
	}
	for _, f := range stale {
		if r.o.DryRun {
			rep.TempFiles++
			rep.TempBytes += f.Size
			rep.TempFileList = append(rep.TempFileList, f)
			continue
		}
		n, err := tc.DeleteTempFile(ctx, f.Path, cutoff)
		switch {
		case err == nil:
			if n == 0 && f.Size > 0 {
				continue // gone meanwhile (renamed into place, or another collector)
			}
			f.Size = n
			rep.TempFiles++
			rep.TempBytes += n
			rep.TempFileList = append(rep.TempFileList, f)
			r.log.Info("gc: removed stale temporary file", "path", f.Path, "size", n, "modified", f.Modified)
		case errors.Is(err, storage.ErrInUse):
			rep.Kept++
		default:
			return fmt.Errorf("gc: delete temp file %s: %w", f.Path, err)
		}
	}
	return nil
}

// markRepository marks the live manifests of repo and what they refer to,
// and returns the manifests that are not live (only with DeleteUntagged).
func (r *run) markRepository(ctx context.Context, repo string, scan storage.RepositoryScan) ([]digest.Digest, error) {
	linked := make(map[digest.Digest]storage.LinkedManifest, len(scan.Manifests))
	for _, m := range scan.Manifests {
		linked[m.Digest] = m
	}
	liveM := map[digest.Digest]bool{}
	var queue []digest.Digest
	add := func(d digest.Digest) {
		if _, ok := linked[d]; ok && !liveM[d] {
			liveM[d] = true
			queue = append(queue, d)
		}
	}
	for _, m := range scan.Manifests {
		if !r.o.DeleteUntagged || !m.LastPushed.Before(r.cutoff) {
			add(m.Digest)
		}
	}
	for _, d := range scan.Tags {
		add(d)
	}
	for len(queue) > 0 {
		for len(queue) > 0 {
			d := queue[0]
			queue = queue[1:]
			if err := r.markManifest(ctx, repo, d, add); err != nil {
				return nil, err
			}
		}
		// Referrers of live manifests are live (and so are theirs).
		for _, m := range scan.Manifests {
			if m.Subject != "" && liveM[m.Subject] {
				add(m.Digest)
			}
		}
	}
	var dead []digest.Digest
	for _, m := range scan.Manifests {
		if !liveM[m.Digest] {
			dead = append(dead, m.Digest)
		}
	}
	return dead, nil
}

// markManifest marks manifest d of repo and everything it refers to; child
// manifests are also passed to child (when not nil).
func (r *run) markManifest(ctx context.Context, repo string, d digest.Digest, child func(digest.Digest)) error {
	r.mark(d)
	m, err := r.st.GetManifest(ctx, repo, d)
	if err != nil {
		if errors.Is(err, storage.ErrManifestUnknown) {
			return nil // deleted meanwhile, or its bytes are missing
		}
		return fmt.Errorf("gc: read manifest %s in %s: %w", d, repo, err)
	}
	blobs, children := oci.References(m.Data)
	r.mark(blobs...)
	r.mark(children...)
	for _, c := range children {
		if child != nil {
			child(c)
		}
	}
	return nil
}
