// Command berth-image builds berth's multi-platform container image without
// a Docker engine (package imagebuild) from the binaries scripts/release.sh
// built, writes it as an OCI image layout and optionally pushes it.
//
//	scripts/release.sh dist linux/amd64 linux/arm64
//	cd test && go run ./cmd/berth-image -root .. -o ../dist/image [-push REF [-insecure]]
//
// make image runs both (docs/deploy/image.md).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/berth-registry/berth/test/imagebuild"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "berth-image:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("berth-image", flag.ContinueOnError)
	root := fs.String("root", "..", "the repository's root")
	bin := fs.String("bin", "", "scripts/release.sh's OUTDIR with linux_amd64 and linux_arm64 (default ROOT/dist)")
	out := fs.String("o", "", "write the index as an OCI image layout into this directory (replaced)")
	push := fs.String("push", "", "push the index to this reference (REGISTRY/REPOSITORY:TAG)")
	insecure := fs.Bool("insecure", false, "push over plain HTTP")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" && *push == "" {
		return fmt.Errorf("nothing to do: give -o DIR and/or -push REF")
	}
	if *bin == "" {
		*bin = filepath.Join(*root, "dist")
	}
	list, err := exec.Command(filepath.Join(*root, "scripts", "release.sh"), "--list").Output()
	if err != nil {
		return fmt.Errorf("scripts/release.sh --list: %w", err)
	}
	idx, err := imagebuild.Build(imagebuild.Options{
		BinDir:   *bin,
		RootFS:   filepath.Join(*root, "deploy", "image", "rootfs"),
		Binaries: strings.Fields(string(list)),
	})
	if err != nil {
		return err
	}
	d, err := idx.Digest()
	if err != nil {
		return err
	}
	if *out != "" {
		rel, err := imagebuild.ReadRelease(*bin)
		if err != nil {
			return err
		}
		if err := os.RemoveAll(*out); err != nil {
			return err
		}
		p, err := layout.Write(*out, empty.Index)
		if err != nil {
			return err
		}
		if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{
			"org.opencontainers.image.ref.name": rel.Version,
		})); err != nil {
			return err
		}
		fmt.Printf("%s: OCI image layout, index %s\n", *out, d)
	}
	if *push != "" {
		var opts []name.Option
		if *insecure {
			opts = append(opts, name.Insecure)
		}
		ref, err := name.ParseReference(*push, opts...)
		if err != nil {
			return err
		}
		if err := remote.WriteIndex(ref, idx, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
			return err
		}
		fmt.Printf("%s@%s\n", ref, d)
	}
	return nil
}
