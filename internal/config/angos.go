package config

// Angos's names for berth's keys are accepted, so that an Angos file is
// brought over unchanged (docs/configuration.md, "Angos's key names"):
//
//	[global] trusted_proxies                 = [server] trusted_proxies
//	[global] max_manifest_size               = [limits] max_manifest_size
//	[auth.oidc.<name>] required_audience     = audiences = [it]
//	[auth.oidc.<name>] clock_skew_tolerance  = clock_skew, in seconds
//	[auth.oidc.<name>] allowed_algorithms    = algorithms
//	[auth.oidc.<name>] jwks_refresh_interval   also takes Angos's seconds
//
// Setting a key under both names is a problem naming both (decoder.alias);
// a problem with a value names the key as written (Config.keyAsWritten).

// rawGlobalTable is the [global] table: rawGlobal, which [repository."<key>"]
// shares, plus the keys of [global] alone.
type rawGlobalTable struct {
	AccessPolicy            *rawPolicy `toml:"access_policy"`
	ImmutableTags           any        `toml:"immutable_tags"`
	ImmutableTagsExclusions any        `toml:"immutable_tags_exclusions"`
	// Angos's names for server.trusted_proxies and limits.max_manifest_size.
	TrustedProxies  any `toml:"trusted_proxies"`
	MaxManifestSize any `toml:"max_manifest_size"`
}

var angosKnown = []string{"global.trusted_proxies", "global.max_manifest_size"}

// decodeAngosGlobal decodes the keys of [global] that are Angos's names for
// berth's keys of other tables.
func (d *decoder) decodeAngosGlobal(f *file, c *Config) {
	g := f.Global
	var proxies, size any
	if f.Server != nil {
		proxies = f.Server.TrustedProxies
	}
	if f.Limits != nil {
		size = f.Limits.MaxManifestSize
	}
	if d.alias("server.trusted_proxies", proxies, "global.trusted_proxies", g.TrustedProxies) {
		var list []string
		d.strList("global.trusted_proxies", g.TrustedProxies, &list)
		for _, p := range list {
			pfx, err := parsePrefix(p)
			if err != nil {
				d.bad("global.trusted_proxies", "%q is not an IP address or CIDR", p)
				continue
			}
			c.Server.TrustedProxies = append(c.Server.TrustedProxies, pfx)
		}
	}
	if d.alias("limits.max_manifest_size", size, "global.max_manifest_size", g.MaxManifestSize) {
		d.size("global.max_manifest_size", g.MaxManifestSize, &c.Limits.MaxManifestSize)
	}
}
