// Package imagebuild builds berth's container image without a Docker engine:
// a multi-platform OCI image index (linux/amd64, linux/arm64) whose images
// are a base of nothing (scratch) plus two layers, the same content the
// Dockerfile at the repository's root builds:
//
//   - a base layer, the same for every platform: deploy/image/rootfs (the
//     user entry in /etc/passwd and /etc/group, /etc/nsswitch.conf, the
//     default /etc/berth/config.toml), the build machine's CA certificates at
//     /etc/ssl/certs/ca-certificates.crt and the /data directory owned by the
//     image's user;
//   - the platform's release binaries (scripts/release.sh) in /usr/local/bin.
//
// Every timestamp is the release's commit date, file owners and modes are
// fixed and entries sorted, so one commit gives one index digest.
//
// It lives in the test module (test/go.mod), which already requires
// go-containerregistry for the tests, so that the product module keeps only
// what the binaries link. cmd/berth-image is its command line (make image).
package imagebuild

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's configuration. The Dockerfile says the same (USER, EXPOSE,
// VOLUME, WORKDIR, ENV, ENTRYPOINT, CMD, LABEL); TestImageMatchesDockerfile
// compares them.
const (
	// UID and GID are the image's user, a number so that Kubernetes'
	// runAsNonRoot can check it without an /etc/passwd lookup.
	UID        = 65532
	GID        = 65532
	User       = "65532:65532"
	WorkingDir = "/data"
	BinDir     = "/usr/local/bin"
	// CACerts is where the build machine's CA bundle is read from and where
	// it goes in the image (Go's crypto/x509 looks there first on Linux).
	CACerts = "/etc/ssl/certs/ca-certificates.crt"
)

var (
	Entrypoint   = []string{"/usr/local/bin/berth"}
	Cmd          = []string{"serve", "-c", "/etc/berth/config.toml"}
	ExposedPorts = []string{"5000/tcp"}
	Volumes      = []string{"/data"}
	Env          = []string{"PATH=/usr/local/bin"}
	// Platforms are the platforms of the index, in its order.
	Platforms = []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}
)

// StaticLabels are the image's labels that do not depend on the release.
func StaticLabels() map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":         "berth",
		"org.opencontainers.image.description":   "An OCI container registry with OIDC workload identity and CEL access policies",
		"org.opencontainers.image.source":        "https://github.com/berth-registry/berth",
		"org.opencontainers.image.url":           "https://github.com/berth-registry/berth",
		"org.opencontainers.image.documentation": "https://github.com/berth-registry/berth/blob/main/docs/deploy/image.md",
		"org.opencontainers.image.vendor":        "berth",
	}
}

// Release is what scripts/release.sh writes to OUTDIR/release.env.
type Release struct {
	Version, Commit string
	Date            time.Time
}

// Labels are every label of the image: StaticLabels and the release's
// version, revision and creation date.
func Labels(r Release) map[string]string {
	l := StaticLabels()
	l["org.opencontainers.image.version"] = r.Version
	l["org.opencontainers.image.revision"] = r.Commit
	l["org.opencontainers.image.created"] = r.Date.UTC().Format(time.RFC3339)
	return l
}

// ReadRelease reads DIR/release.env.
func ReadRelease(dir string) (Release, error) {
	f, err := os.Open(filepath.Join(dir, "release.env"))
	if err != nil {
		return Release{}, err
	}
	defer f.Close()
	var r Release
	var epoch string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		switch k {
		case "VERSION":
			r.Version = v
		case "COMMIT":
			r.Commit = v
		case "EPOCH":
			epoch = v
		}
	}
	if err := sc.Err(); err != nil {
		return Release{}, err
	}
	sec, err := strconv.ParseInt(epoch, 10, 64)
	if err != nil || r.Version == "" || r.Commit == "" {
		return Release{}, fmt.Errorf("%s: want VERSION, COMMIT and a numeric EPOCH", f.Name())
	}
	r.Date = time.Unix(sec, 0).UTC()
	return r, nil
}

// Options say where the inputs are.
type Options struct {
	// BinDir is scripts/release.sh's OUTDIR: BinDir/linux_ARCH/* go into
	// the image of linux/ARCH, and BinDir/release.env stamps it.
	BinDir string
	// RootFS is deploy/image/rootfs.
	RootFS string
	// CACerts is the CA bundle to copy (default: CACerts of this machine).
	CACerts string
	// Binaries are the names that must be in each BinDir/linux_ARCH (the
	// output of scripts/release.sh --list); nothing else is taken.
	Binaries []string
}

// Build builds the index.
func Build(o Options) (v1.ImageIndex, error) {
	rel, err := ReadRelease(o.BinDir)
	if err != nil {
		return nil, err
	}
	if len(o.Binaries) == 0 {
		return nil, errors.New("imagebuild: no binaries")
	}
	certs := o.CACerts
	if certs == "" {
		certs = CACerts
	}
	base, err := baseLayer(o.RootFS, certs, rel.Date)
	if err != nil {
		return nil, err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var adds []mutate.IndexAddendum
	for _, p := range Platforms {
		bins, err := binaryLayer(filepath.Join(o.BinDir, p.OS+"_"+p.Architecture), o.Binaries, rel.Date)
		if err != nil {
			return nil, err
		}
		img, err := image(p, rel, base, bins)
		if err != nil {
			return nil, err
		}
		plat := p
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &plat}})
	}
	idx = mutate.AppendManifests(idx, adds...)
	return mutate.Annotations(idx, map[string]string{
		"org.opencontainers.image.source":   StaticLabels()["org.opencontainers.image.source"],
		"org.opencontainers.image.version":  rel.Version,
		"org.opencontainers.image.revision": rel.Commit,
		"org.opencontainers.image.created":  rel.Date.Format(time.RFC3339),
	}).(v1.ImageIndex), nil
}

func image(p v1.Platform, rel Release, layers ...v1.Layer) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	created := v1.Time{Time: rel.Date}
	var adds []mutate.Addendum
	for i, l := range layers {
		adds = append(adds, mutate.Addendum{Layer: l, History: v1.History{
			Created:   created,
			CreatedBy: [...]string{"berth imagebuild: base (user, CA certificates, config, /data)", "berth imagebuild: binaries (scripts/release.sh)"}[i],
			Comment:   "",
		}})
	}
	img, err := mutate.Append(img, adds...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Created = created
	cf.Config = v1.Config{
		User:         User,
		Entrypoint:   Entrypoint,
		Cmd:          Cmd,
		Env:          Env,
		WorkingDir:   WorkingDir,
		ExposedPorts: set(ExposedPorts),
		Volumes:      set(Volumes),
		Labels:       Labels(rel),
	}
	return mutate.ConfigFile(img, cf)
}

func set(keys []string) map[string]struct{} {
	m := make(map[string]struct{}, len(keys))
	for _, k := range keys {
		m[k] = struct{}{}
	}
	return m
}

// entry is one file or directory of a layer.
type entry struct {
	name     string // without a leading slash; directories end in /
	mode     int64
	uid, gid int
	data     []byte
}

func baseLayer(rootfs, certs string, mtime time.Time) (v1.Layer, error) {
	var es []entry
	err := filepath.WalkDir(rootfs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(rootfs, p)
		if err != nil || rel == "." {
			return err
		}
		name := filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			es = append(es, entry{name: name + "/", mode: 0o755})
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			es = append(es, entry{name: name, mode: 0o644, data: b})
		default:
			return fmt.Errorf("imagebuild: %s: only files and directories", p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("imagebuild: rootfs: %w", err)
	}
	ca, err := os.ReadFile(certs)
	if err != nil {
		return nil, fmt.Errorf("imagebuild: CA certificates: %w", err)
	}
	es = append(es,
		entry{name: strings.TrimPrefix(CACerts, "/"), mode: 0o644, data: ca},
		entry{name: strings.TrimPrefix(WorkingDir, "/") + "/", mode: 0o755, uid: UID, gid: GID},
		entry{name: "tmp/", mode: 0o1777},
	)
	return layer(es, mtime)
}

func binaryLayer(dir string, names []string, mtime time.Time) (v1.Layer, error) {
	var es []entry
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return nil, fmt.Errorf("imagebuild: binary: %w", err)
		}
		es = append(es, entry{name: path.Join(strings.TrimPrefix(BinDir, "/"), n), mode: 0o755, data: b})
	}
	return layer(es, mtime)
}

// layer writes es, with every parent directory, sorted, as one gzip layer.
func layer(es []entry, mtime time.Time) (v1.Layer, error) {
	all := map[string]entry{}
	for _, e := range es {
		all[e.name] = e
		for d := path.Dir(strings.TrimSuffix(e.name, "/")); d != "."; d = path.Dir(d) {
			if _, ok := all[d+"/"]; !ok {
				all[d+"/"] = entry{name: d + "/", mode: 0o755}
			}
		}
	}
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		e := all[n]
		h := &tar.Header{Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.gid, ModTime: mtime}
		if strings.HasSuffix(n, "/") {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
}
