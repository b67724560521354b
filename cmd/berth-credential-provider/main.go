// Command berth-credential-provider is a kubelet image credential provider
// (KEP-2133, with service-account tokens: KEP-4412, Kubernetes >= 1.34). The
// kubelet runs it with a CredentialProviderRequest on stdin, naming the image
// and carrying the pod's projected service-account token; it trades that token
// at berth's token service for a session token and answers a
// CredentialProviderResponse on stdout. Nothing is stored on the node.
//
//	berth-credential-provider --registry https://registry.example.com --provider kubernetes
//
// See docs/auth/kubernetes.md.
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
