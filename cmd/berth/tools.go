package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/berth-registry/berth/internal/auth/users"
	"github.com/berth-registry/berth/internal/oidctest"
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

// devIssuer runs a local OIDC issuer for trying berth: discovery, JWKS, and a
// GitHub-Actions-compatible token endpoint.
func devIssuer(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dev-issuer", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addr := fs.String("addr", "127.0.0.1:8900", "listen address (loopback)")
	claimsFile := fs.String("claims", "", "JSON file of claims for the GitHub token endpoint")
	repo := fs.String("repository", "myorg/api", "repository claim")
	ref := fs.String("ref", "refs/heads/main", "ref claim")
	actor := fs.String("actor", "octocat", "actor claim")
	requestToken := fs.String("request-token", "dev-request-token", "bearer token the token endpoint accepts (ACTIONS_ID_TOKEN_REQUEST_TOKEN)")
	ttl := fs.Duration("ttl", 5*time.Minute, "lifetime of minted tokens (GitHub's is 5m)")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return usageError(stdout, stderr, fmt.Errorf("dev-issuer: usage: berth dev-issuer [-addr 127.0.0.1:8900] [-claims FILE] [-repository R] [-ref REF] [-actor A]"))
	}
	claims := map[string]any{"repository": *repo, "ref": *ref, "actor": *actor,
		"repository_owner": strings.Split(*repo, "/")[0], "sub": "repo:" + *repo + ":ref:" + *ref}
	if *claimsFile != "" {
		data, err := os.ReadFile(*claimsFile)
		if err != nil {
			fmt.Fprintf(stderr, "berth: dev-issuer: %v\n", err)
			return exitError
		}
		if err := json.Unmarshal(data, &claims); err != nil {
			fmt.Fprintf(stderr, "berth: dev-issuer: %s: %v\n", *claimsFile, err)
			return exitError
		}
	}
	iss, err := oidctest.New(oidctest.Options{Addr: *addr, GitHubClaims: claims, GitHubRequestToken: *requestToken, TokenTTL: *ttl})
	if err != nil {
		fmt.Fprintf(stderr, "berth: dev-issuer: %v\n", err)
		return exitError
	}
	defer iss.Close()
	reqURL, reqTok := iss.GitHubTokenRequest()
	fmt.Fprintf(stdout, `berth dev-issuer: a local OIDC issuer for development. NEVER use it in production.

  issuer:  %[1]s
  jwks:    %[2]s

Configure berth with:

  [auth.oidc.github-actions]
  provider = "github"
  issuer = "%[1]s"
  audiences = ["berth"]

Simulate a GitHub Actions job:

  export ACTIONS_ID_TOKEN_REQUEST_URL='%[3]s'
  export ACTIONS_ID_TOKEN_REQUEST_TOKEN='%[4]s'
  TOKEN=$(curl -s -H "Authorization: bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN" \
    "$ACTIONS_ID_TOKEN_REQUEST_URL&audience=berth" | jq -r '.value')
  echo "$TOKEN" | docker login localhost:5000 --username github-actions --password-stdin

`, iss.URL(), iss.JWKSURL(), reqURL, reqTok)
	<-ctx.Done()
	return exitOK
}
