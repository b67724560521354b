package tomlkey

import "testing"

func TestFormat(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want string
	}{
		{[]string{"server", "port"}, "server.port"},
		{[]string{"repository", "team/app", "access_policy"}, `repository."team/app".access_policy`},
		{[]string{"auth", "oidc", "k8s.prod"}, `auth.oidc."k8s.prod"`},
		{[]string{"a", ""}, `a.""`},
	} {
		if got := Format(c.in...); got != c.want {
			t.Errorf("Format(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}
