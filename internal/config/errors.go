package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a configuration.
type Problem struct {
	// Key is the TOML key path, e.g. "server.tls.server_private_key" or
	// `repository."team/app".access_policy`. Empty for a syntax error that is
	// not about a key.
	Key string
	// Line is the 1-based line in the file, 0 when unknown (a Config built in code).
	Line int
	// Message says what is wrong, in lowercase.
	Message string
}

// String formats the problem as "file:line: key: message", leaving out the
// parts that are unknown.
func (p Problem) String(file string) string {
	var b strings.Builder
	if file != "" {
		b.WriteString(file)
		if p.Line > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(p.Line))
		}
		b.WriteString(": ")
	} else if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Errors is every problem found in a configuration. Load, Parse and Validate
// return it (as error) so that a user fixes everything in one round.
type Errors struct {
	// File is the name given to Parse (the path for Load).
	File     string
	Problems []Problem
}

// Error returns one "file:line: key: message" line per problem.
func (e *Errors) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String(e.File)
	}
	return strings.Join(lines, "\n")
}

// add records a problem; line is looked up by the caller.
func (e *Errors) add(key string, line int, format string, args ...any) {
	e.Problems = append(e.Problems, Problem{Key: key, Line: line, Message: fmt.Sprintf(format, args...)})
}

// err returns e as an error, or nil when there is no problem. Problems are
// sorted by line (those without a line last), keeping discovery order among
// equals.
func (e *Errors) err() error {
	if len(e.Problems) == 0 {
		return nil
	}
	sort.SliceStable(e.Problems, func(i, j int) bool {
		li, lj := e.Problems[i].Line, e.Problems[j].Line
		if li == 0 || lj == 0 {
			return li != 0 && lj == 0
		}
		return li < lj
	})
	return e
}
