package credclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"
)

// LoginOptions are berth login's flags.
type LoginOptions struct {
	Registry    string // HOST[:PORT] or an http(s) URL
	Provider    string
	Audience    string // default: the registry's URL
	TokenSource string // default: auto
	CAFile      string
	// NoVerify skips obtaining a credential at login (the token source
	// may exist only later, e.g. in the job that pushes).
	NoVerify bool
}

// Login records the registry's settings for the helper, checks that a
// credential can be obtained (unless NoVerify), and names the helper in
// credHelpers of docker's config.json and of the containers auth.json. It
// prints every change on out.
func (h *Helper) Login(ctx context.Context, o LoginOptions, out io.Writer) error {
	host, u, err := RegistryHost(o.Registry)
	if err != nil {
		return err
	}
	var problems []string
	if o.Provider == "" {
		problems = append(problems, "--provider is required (the [auth.oidc.<name>] table that verifies the ID token)")
	}
	src, err := ParseSource(o.TokenSource)
	if err != nil {
		problems = append(problems, "--token-source: "+err.Error())
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	if o.Audience == "" {
		o.Audience = u.String()
	}
	reg := &Registry{URL: u.String(), Provider: o.Provider, Audience: o.Audience, TokenSource: src.String(), CAFile: o.CAFile}
	if o.CAFile != "" {
		if _, err := HTTPClient(o.CAFile); err != nil {
			return err
		}
	}
	s, err := loadSettings(h.Paths.Settings)
	if err != nil {
		return err
	}
	if old := s.Registries[host]; old != nil {
		reg.Changed = old.Changed // a second login keeps what the first replaced
	}
	var cred Credential
	if !o.NoVerify {
		now := h.Env.Now()
		if cred, err = h.obtain(ctx, host, reg); err != nil {
			return fmt.Errorf("login %s: %w (nothing was changed; --no-verify records the settings without this check)", host, err)
		}
		// The first get uses it.
		e := &cacheEntry{Key: reg.cacheKey(), Token: cred.Token, Obtained: now, Lifetime: int64(cred.Lifetime / time.Second)}
		if err := h.Paths.writeCache(host, e); err != nil {
			return fmt.Errorf("login %s: caching the credential: %w", host, err)
		}
	}
	s.Registries[host] = reg
	if err := s.save(h.Paths.Settings); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: %s: provider %q, audience %q, token source %s\n", h.Paths.Settings, host, reg.Provider, reg.Audience, reg.TokenSource)
	// A cached token of earlier settings is not reused (its key differs).
	for _, file := range []string{h.Paths.DockerConfig, h.Paths.AuthJSON} {
		prev, changed, err := setCredHelper(file, host, HelperName)
		if err != nil {
			return fmt.Errorf("login %s: %w", host, err)
		}
		if !changed {
			fmt.Fprintf(out, "%s: credHelpers[%q] is already %q\n", file, host, HelperName)
			continue
		}
		reg.Changed = append(reg.Changed, FileChange{File: file, Previous: prev})
		if prev == "" {
			fmt.Fprintf(out, "%s: credHelpers[%q] = %q\n", file, host, HelperName)
		} else {
			fmt.Fprintf(out, "%s: credHelpers[%q] = %q (was %q)\n", file, host, HelperName, prev)
		}
	}
	if err := s.save(h.Paths.Settings); err != nil {
		return err
	}
	if _, err := exec.LookPath("docker-credential-" + HelperName); err != nil {
		fmt.Fprintf(out, "warning: docker-credential-%s is not on PATH: clients will not find the helper\n", HelperName)
	}
	return nil
}

// Logout undoes Login for a registry: the credHelpers entries it set are
// removed (or set back to what they replaced), the cached credential is
// revoked and removed, and the settings are forgotten.
func (h *Helper) Logout(ctx context.Context, registry string, out io.Writer) error {
	host, _, err := RegistryHost(registry)
	if err != nil {
		return err
	}
	s, err := loadSettings(h.Paths.Settings)
	if err != nil {
		return err
	}
	reg := s.Registries[host]
	if reg == nil {
		return fmt.Errorf("logout %s: not logged in with berth login (no entry in %s)", host, h.Paths.Settings)
	}
	if err := h.forget(ctx, host); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: removed the cached credential\n", h.Paths.cacheFile(host))
	var problems []string
	for _, c := range reg.Changed {
		cur, _, err := readCredHelper(c.File, host)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if cur != HelperName {
			fmt.Fprintf(out, "%s: credHelpers[%q] is %q now, left alone\n", c.File, host, cur)
			continue
		}
		if _, _, err := setCredHelper(c.File, host, c.Previous); err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if c.Previous == "" {
			fmt.Fprintf(out, "%s: removed credHelpers[%q]\n", c.File, host)
		} else {
			fmt.Fprintf(out, "%s: credHelpers[%q] = %q again\n", c.File, host, c.Previous)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("logout %s: %s (the settings are kept; run berth logout again)", host, strings.Join(problems, "; "))
	}
	delete(s.Registries, host)
	if err := s.save(h.Paths.Settings); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: removed %s\n", h.Paths.Settings, host)
	return nil
}

// readCredHelper returns credHelpers[host] of the JSON file at path.
func readCredHelper(path, host string) (string, bool, error) {
	o, _, err := readJSONObject(path)
	if err != nil {
		return "", false, err
	}
	var helpers map[string]string
	if raw, ok := o["credHelpers"]; ok {
		_ = json.Unmarshal(raw, &helpers)
	}
	v, ok := helpers[host]
	return v, ok, nil
}
