// Command docker-credential-berth is a docker credential helper (the
// docker-credential-helpers protocol: get, store, erase, list) for berth.
// On get it obtains a fresh OIDC ID token from where the workload has one
// (GitHub Actions, GitLab, a Kubernetes projected token, a file, a
// command), trades it at berth's token service for a session token, caches
// that per registry and renews it before it expires. `berth login`
// configures it; see docs/auth/credential-helper.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/berth-registry/berth/internal/credclient"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx)
	stop()
	os.Exit(code)
}

func run(ctx context.Context) int {
	paths, err := credclient.DefaultPaths(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stdout, err)
		fmt.Fprintln(os.Stderr, "docker-credential-berth:", err)
		return 1
	}
	h := &credclient.Helper{Env: credclient.OSEnv(), Paths: paths, Stderr: os.Stderr}
	return h.Run(ctx, os.Args[1:], os.Stdin, os.Stdout)
}
