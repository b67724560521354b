package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/berth-registry/berth/internal/credclient"
)

const loginUsage = `usage: berth login REGISTRY --provider NAME [--audience AUD] [--token-source SRC]
                   [--ca-file FILE] [--no-verify]

Configure docker-credential-berth for REGISTRY (HOST[:PORT], or http://HOST:PORT
for a plain-HTTP registry): record the provider, audience and token source in
${XDG_CONFIG_HOME:-~/.config}/berth/credential-helper.json, obtain a
credential once to check them, and set credHelpers[HOST] = "berth" in docker's
config.json (${DOCKER_CONFIG:-~/.docker}/config.json) and in the containers
auth.json ($REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json,
else ~/.config/containers/auth.json). Every other key is kept. Prints each change.

  --provider NAME      the [auth.oidc.<name>] provider that verifies the ID token (required)
  --audience AUD       audience of the GitHub Actions ID token (default: the registry URL)
  --token-source SRC   where the helper gets a fresh ID token (default auto):
                         github-actions      ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN
                         gitlab[:VARIABLE]   an id_tokens: variable (default BERTH_ID_TOKEN)
                         kubernetes[:PATH]   a projected token (default /var/run/secrets/berth/token)
                         file:PATH           any file holding an ID token
                         command:COMMAND     the standard output of sh -c COMMAND
                         auto                the first of github-actions, gitlab, kubernetes found
  --ca-file FILE       PEM CA bundle berth's certificate chains to (default: system roots)
  --no-verify          record the settings without obtaining a credential now

See docs/auth/credential-helper.md.
`

const logoutUsage = `usage: berth logout REGISTRY

Undo berth login for REGISTRY: revoke and remove the cached credential, remove
the credHelpers entries berth login set (or set back the ones it replaced),
and forget the registry's settings. Prints each change.
`

func loginHelper() (*credclient.Helper, error) {
	paths, err := credclient.DefaultPaths(os.Getenv)
	if err != nil {
		return nil, err
	}
	return &credclient.Helper{Env: credclient.OSEnv(), Paths: paths, Stderr: os.Stderr}, nil
}

// parseInterleaved parses flags that may come before or after positional
// arguments (berth login HOST --provider p).
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func loginCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("login", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var o credclient.LoginOptions
	fs.StringVar(&o.Provider, "provider", "", "")
	fs.StringVar(&o.Audience, "audience", "", "")
	fs.StringVar(&o.TokenSource, "token-source", credclient.SourceAuto, "")
	fs.StringVar(&o.CAFile, "ca-file", "", "")
	fs.BoolVar(&o.NoVerify, "no-verify", false, "")
	pos, err := parseInterleaved(fs, args)
	if err == nil && len(pos) != 1 {
		err = errors.New("want exactly one REGISTRY")
	}
	if err != nil {
		fmt.Fprintf(stderr, "berth login: %v\n\n%s", err, loginUsage)
		return exitUsage
	}
	o.Registry = pos[0]
	h, err := loginHelper()
	if err == nil {
		err = h.Login(ctx, o, stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "berth login:", err)
		return exitError
	}
	return exitOK
}

func logoutCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("logout", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	pos, err := parseInterleaved(fs, args)
	if err == nil && len(pos) != 1 {
		err = errors.New("want exactly one REGISTRY")
	}
	if err != nil {
		fmt.Fprintf(stderr, "berth logout: %v\n\n%s", err, logoutUsage)
		return exitUsage
	}
	h, err := loginHelper()
	if err == nil {
		err = h.Logout(ctx, pos[0], stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "berth logout:", err)
		return exitError
	}
	return exitOK
}
