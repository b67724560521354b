package main

import (
	"bufio"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/berth-registry/berth/internal/auth/users"
	"github.com/berth-registry/berth/internal/devissuer"
)

// hashPassword reads a password from stdin (first line) and prints its hash
// for [auth.identity.<id>] password.
func hashPassword(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hash-password", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	alg := fs.String("a", "bcrypt", "algorithm: bcrypt or argon2id")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return usageError(stdout, stderr, fmt.Errorf("hash-password: usage: berth hash-password [-a bcrypt|argon2id] < password"))
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && err != io.EOF {
		fmt.Fprintf(stderr, "berth: hash-password: %v\n", err)
		return exitError
	}
	password := strings.TrimRight(line, "\r\n")
	if password == "" {
		fmt.Fprintln(stderr, "berth: hash-password: empty password (give it on standard input)")
		return exitError
	}
	h, err := users.Hash(password, *alg)
	if err != nil {
		fmt.Fprintf(stderr, "berth: hash-password: %v\n", err)
		return exitError
	}
	fmt.Fprintln(stdout, h)
	return exitOK
}

// devIssuerOpts is the command line of `berth dev-issuer`.
type devIssuerOpts struct {
	addr, stateDir, claimsFile, repo, ref, actor, requestToken string
	ttl                                                        time.Duration
}

// devIssuerFlags defines dev-issuer's flags; its usage lists them all.
func devIssuerFlags(w io.Writer) (*flag.FlagSet, *devIssuerOpts) {
	o := &devIssuerOpts{}
	fs := flag.NewFlagSet("dev-issuer", flag.ContinueOnError)
	fs.SetOutput(w)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8900", "listen `address` (keep it on loopback)")
	fs.StringVar(&o.stateDir, "state-dir", defaultDevIssuerState(), "`directory` keeping the signing key (signing-key.pem, mode 0600) across restarts")
	fs.StringVar(&o.claimsFile, "claims", "", "JSON `file` of claims merged over the defaults of the GitHub token endpoint")
	fs.StringVar(&o.repo, "repository", "myorg/api", "repository `claim` (also sets repository_owner, sub, workflow_ref, job_workflow_ref)")
	fs.StringVar(&o.ref, "ref", "refs/heads/main", "ref `claim` (also sets ref_type, sub, workflow_ref, job_workflow_ref)")
	fs.StringVar(&o.actor, "actor", "octocat", "actor `claim`")
	fs.StringVar(&o.requestToken, "request-token", "dev-request-token", "bearer `token` the token endpoint accepts (ACTIONS_ID_TOKEN_REQUEST_TOKEN)")
	fs.DurationVar(&o.ttl, "ttl", 5*time.Minute, "lifetime of minted tokens (GitHub's is 5m)")
	return fs, o
}

// defaultDevIssuerState is where dev-issuer keeps its key by default: the
// user's cache directory, else ./berth-dev-issuer.
func defaultDevIssuerState() string {
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "berth", "dev-issuer")
	}
	return "berth-dev-issuer"
}

func devIssuerUsage() string {
	var b strings.Builder
	b.WriteString(`usage: berth dev-issuer [flags]

Run a local OIDC issuer for trying workload identity (docs/auth/github-actions.md):
discovery, keys, and a GitHub-Actions-style token endpoint. NEVER use it in
production. Its signing key is kept in --state-dir, so tokens and berth's
cached keys stay valid when it restarts.

Flags:
`)
	fs, _ := devIssuerFlags(&b)
	fs.PrintDefaults()
	return b.String()
}

// devIssuerClaims are the claims of the GitHub token endpoint: the flags,
// then the claims file, then what derives from the repository and the ref
// (unless the file sets it), so that one token describes one job.
func devIssuerClaims(o *devIssuerOpts) (map[string]any, error) {
	claims := map[string]any{"repository": o.repo, "ref": o.ref, "actor": o.actor}
	var file map[string]any
	if o.claimsFile != "" {
		data, err := os.ReadFile(o.claimsFile)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(data, &file); err != nil {
			return nil, fmt.Errorf("%s: %w", o.claimsFile, err)
		}
		maps.Copy(claims, file)
	}
	repo, _ := claims["repository"].(string)
	ref, _ := claims["ref"].(string)
	refType := "branch"
	if strings.HasPrefix(ref, "refs/tags/") {
		refType = "tag"
	}
	workflow := repo + "/.github/workflows/release.yml@" + ref
	for k, v := range map[string]any{
		"repository_owner": strings.Split(repo, "/")[0],
		"sub":              "repo:" + repo + ":ref:" + ref,
		"ref_type":         refType,
		"workflow":         "release",
		"workflow_ref":     workflow,
		"job_workflow_ref": workflow,
	} {
		if _, set := file[k]; !set {
			claims[k] = v
		}
	}
	return claims, nil
}

// devIssuerKey reads the signing key in dir, or creates it (RSA-2048,
// PKCS #8 PEM, mode 0600, in a 0700 directory).
func devIssuerKey(dir string) (crypto.Signer, string, error) {
	path := filepath.Join(dir, "signing-key.pem")
	data, err := os.ReadFile(path)
	if err == nil {
		block, _ := pem.Decode(data)
		if block == nil {
			return nil, path, fmt.Errorf("%s: not a PEM file", path)
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, path, fmt.Errorf("%s: %w", path, err)
		}
		signer, ok := k.(crypto.Signer)
		if !ok {
			return nil, path, fmt.Errorf("%s: unsupported key %T", path, k)
		}
		return signer, path, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, path, err
	}
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, path, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, path, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, path, err
	}
	// O_EXCL: two issuers started at once do not overwrite each other's key.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, path, err
	}
	if _, err := f.Write(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		f.Close()
		return nil, path, err
	}
	if err := f.Close(); err != nil {
		return nil, path, err
	}
	return priv, path, nil
}

// devIssuer runs a local OIDC issuer for trying berth: discovery, JWKS, and a
// GitHub-Actions-compatible token endpoint.
func devIssuer(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, o := devIssuerFlags(io.Discard)
	if err := fs.Parse(args); err != nil {
		return usageError(stdout, stderr, fmt.Errorf("dev-issuer: %w (berth dev-issuer -h lists the flags)", err))
	}
	if fs.NArg() > 0 {
		return usageError(stdout, stderr, fmt.Errorf("dev-issuer: unexpected argument %q", fs.Arg(0)))
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "berth: dev-issuer: %v\n", err)
		return exitError
	}
	claims, err := devIssuerClaims(o)
	if err != nil {
		return fail(err)
	}
	key, keyFile, err := devIssuerKey(o.stateDir)
	if err != nil {
		return fail(err)
	}
	iss, err := devissuer.New(devissuer.Options{Addr: o.addr, GitHubClaims: claims, GitHubRequestToken: o.requestToken,
		TokenTTL: o.ttl, SigningKey: key})
	if err != nil {
		return fail(err)
	}
	defer iss.Close()
	reqURL, reqTok := iss.GitHubTokenRequest()
	fmt.Fprintf(stdout, `berth dev-issuer: a local OIDC issuer for development. NEVER use it in production.

  issuer:  %[1]s
  jwks:    %[2]s
  key:     %[5]s (kid %[6]s)

Configure berth with:

  [auth.oidc.github-actions]
  provider = "github"
  issuer = "%[1]s"
  audiences = ["berth"]

Simulate a GitHub Actions job (docs/auth/github-actions.md):

  export ACTIONS_ID_TOKEN_REQUEST_URL='%[3]s'
  export ACTIONS_ID_TOKEN_REQUEST_TOKEN='%[4]s'
  ID_TOKEN=$(curl -s -H "Authorization: bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN" \
    "$ACTIONS_ID_TOKEN_REQUEST_URL&audience=berth" | jq -r '.value')
  echo "$ID_TOKEN" | docker login localhost:5000 --username github-actions --password-stdin

crane, oras and other clients store the ID token, which expires: log them in with a session token:

  SESSION=$(curl -s http://localhost:5000/token \
    -d grant_type=urn:ietf:params:oauth:grant-type:token-exchange \
    --data-urlencode "subject_token=$ID_TOKEN" \
    -d subject_token_type=urn:ietf:params:oauth:token-type:id_token \
    -d requested_token_type=urn:berth:token-type:session | jq -r '.access_token')
  echo "$SESSION" | crane auth login localhost:5000 -u session --password-stdin

`, iss.URL(), iss.JWKSURL(), reqURL, reqTok, keyFile, iss.KeyID())
	<-ctx.Done()
	return exitOK
}
