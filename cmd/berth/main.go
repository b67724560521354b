// Command berth is an OCI container registry.
//
//	berth serve [-c FILE]          serve (defaults without -c)
//	berth -c FILE server           the same, in Angos's spelling
//	berth config check -c FILE     report every problem in a configuration
//	berth policy explain -c FILE   explain offline how the policies decide a request
//	berth gc [-c FILE] [--dry-run] collect garbage once
//	berth hash-password            hash a password for [auth.identity.<id>]
//	berth dev-issuer               run a local OIDC issuer to try workload identity
//	berth login REGISTRY --provider NAME   configure docker-credential-berth
//	berth logout REGISTRY          undo berth login
//	berth version                  print the version
//	berth help [COMMAND]           print the usage, or COMMAND's
//
// The usage text in run.go is the full reference (berth help).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
