package config

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
)

// LogLevelEnv is the environment variable that sets the log level; it wins
// over [log] level.
const LogLevelEnv = "BERTH_LOG_LEVEL"

// LogLevels are the values of [log] level and of BERTH_LOG_LEVEL.
func LogLevels() []string { return []string{"debug", "info", "warn", "error"} }

// EffectiveLogLevel is the log level to run with: BERTH_LOG_LEVEL's value
// when env (the variable's value, "" when unset) is not empty, else l.Level.
// An env value that is not a level (any case) is an error naming the
// variable.
func (l Log) EffectiveLogLevel(env string) (slog.Level, error) {
	if env == "" {
		return l.SlogLevel(), nil
	}
	v := strings.ToLower(strings.TrimSpace(env))
	if !slices.Contains(LogLevels(), v) {
		return 0, fmt.Errorf("%s=%q is not one of %s", LogLevelEnv, env, strings.Join(LogLevels(), ", "))
	}
	return Log{Level: v}.SlogLevel(), nil
}
