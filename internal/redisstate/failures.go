package redisstate

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// failuresScript adds ARGV[1] to the counter KEYS[1], starting its window of
// ARGV[2] ms when it has none, and returns {count, ms left}. One round trip,
// atomic: replicas counting at once never lose an increment or a window end.
var failuresScript = redis.NewScript(`
local n
if tonumber(ARGV[1]) > 0 then
  n = redis.call('INCRBY', KEYS[1], ARGV[1])
  if redis.call('PTTL', KEYS[1]) < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
  end
else
  n = tonumber(redis.call('GET', KEYS[1]) or '0')
end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then left = 0 end
return {n, left}
`)

// AddFailures implements access.FailureCounter with one key per client
// address that expires with its window: the failed-authentication limit holds
// across replicas.
func (r *Redis) AddFailures(ctx context.Context, key string, delta int, window time.Duration) (int, time.Duration, error) {
	res, err := failuresScript.Run(ctx, r.c, []string{r.key("failures", key)}, delta, window.Milliseconds()).Int64Slice()
	if err != nil {
		return 0, 0, fmt.Errorf("shared: failure counter: %w", err)
	}
	if len(res) != 2 {
		return 0, 0, fmt.Errorf("shared: failure counter: unexpected reply %v", res)
	}
	return int(res[0]), time.Duration(res[1]) * time.Millisecond, nil
}
