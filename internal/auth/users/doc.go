// Package users checks static users: usernames with bcrypt or argon2id
// password hashes, given inline in the configuration or in an htpasswd file.
//
//	st, err := users.New(cfg.Users, cfg.HtpasswdFile, users.Options{})
//	...
//	id, err := st.Check(ctx, username, password) // errors.Is(err, auth.ErrInvalidCredentials)
//
// Accepted hashes: bcrypt ($2a$, $2b$, $2y$) and argon2id PHC strings
// ($argon2id$v=19$m=...,t=...,p=...$salt$hash). htpasswd files may only hold
// bcrypt hashes (htpasswd -B). Anything else is refused by New, naming the
// user, so a typo never silently locks a user out or lets one in.
//
// Verified credentials are cached for a short time (Options.CacheTTL, 60s by
// default) under an HMAC-SHA-256 of username and password, so a docker push
// that authenticates on every request does not pay for bcrypt each time.
// Concurrent checks of the same credentials share one hash computation.
//
// Caveats:
//   - Callers MUST NOT log the password or Check's inputs; log the returned
//     Identity's ID or the fact that the check failed.
//   - A failed check is NEVER cached; every wrong password costs a full hash.
//     Rate limiting is the HTTP layer's job.
//   - The user list and the htpasswd file are read once, by New. To change
//     users, build a new Store (its cache starts empty).
//   - Unknown users cost one bcrypt comparison against a dummy hash so the
//     response time does not reveal which usernames exist.
package users
