// Package ratelimit is the rate-limit layer applied at a destination's
// inbound proxy: a token bucket (requests_per_second refill, burst size)
// answers 429 when empty. Observe mode records rate_limited and forwards.
package ratelimit
