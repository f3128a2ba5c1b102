// Package retry is the retry and timeout layer. The timeout bounds the
// whole request including its retries (504 at the bound); each attempt may
// have its own per-try timeout. Failed attempts are retried on the
// configured conditions (5xx, gateway-error, connect-failure, reset) while a
// Linkerd-style retry budget allows: every request deposits ratio tokens,
// every retry withdraws one, on top of min_per_second retries, over a 10 s
// window. Only requests whose body can be replayed are retried (no body, or
// one buffered up to MaxReplayBody).
//
// Observe mode applies neither the timeout nor retries; it records
// "timeout" when a response took longer than the timeout and "retry" when
// an attempt failed in a way that would have been retried.
package retry
