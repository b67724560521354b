package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// binaryName is the file the kubelet's CredentialProviderConfig names.
const binaryName = "berth-credential-provider"

// installArgs recognises the install mode a DaemonSet runs from berth's
// shell-less image: `--install-to DIR [--wait]` copies this executable into
// DIR (the kubelet's --image-credential-provider-bin-dir, mounted from the
// node) and, with --wait, then blocks until it is stopped, so the DaemonSet's
// one container keeps the pod running. ok is false when args are the
// kubelet's (no --install-to).
func installArgs(args []string, stderr io.Writer) (dir string, wait, ok bool, err error) {
	install := false
	for _, a := range args {
		name := strings.TrimLeft(a, "-")
		if strings.HasPrefix(a, "-") && (name == "install-to" || strings.HasPrefix(name, "install-to=")) {
			install = true
		}
	}
	if !install {
		return "", false, false, nil
	}
	fs := flag.NewFlagSet("berth-credential-provider", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&dir, "install-to", "", "copy this binary into `DIR` (the kubelet's --image-credential-provider-bin-dir) and exit")
	fs.BoolVar(&wait, "wait", false, "after --install-to, block until stopped (a DaemonSet's container)")
	if err := fs.Parse(args); err != nil {
		return "", false, true, err
	}
	if fs.NArg() > 0 {
		return "", false, true, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if dir == "" {
		return "", false, true, errors.New("--install-to needs a directory")
	}
	return dir, wait, true, nil
}

// install copies the running executable into dir as binaryName: written to
// a temporary file in dir, synced, made executable and renamed over the old
// one, so the kubelet never runs a half-written plugin.
func install(dir string, stdout io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this executable: %w", err)
	}
	src, err := os.Open(self)
	if err != nil {
		return err
	}
	defer src.Close()
	tmp, err := os.CreateTemp(dir, "."+binaryName+".tmp-*")
	if err != nil {
		return fmt.Errorf("install: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename: nothing to remove
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), src); err != nil {
		tmp.Close()
		return fmt.Errorf("install: copying to %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return fmt.Errorf("install: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("install: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	dst := filepath.Join(dir, binaryName)
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	fmt.Fprintf(stdout, "installed %s (sha256:%s)\n", dst, hex.EncodeToString(h.Sum(nil)))
	return nil
}

// runInstall is the install mode; it returns the exit code.
func runInstall(ctx context.Context, dir string, wait bool, stdout, stderr io.Writer) int {
	if err := install(dir, stdout); err != nil {
		fmt.Fprintln(stderr, "berth-credential-provider:", err)
		return 1
	}
	if wait {
		<-ctx.Done()
	}
	return 0
}
