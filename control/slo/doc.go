// Package slo turns SLO documents (kind SLO in control/policy) into
// Prometheus rule groups — recording rules for the error ratio over each
// alert window and the Google SRE workbook's multiwindow multi-burn-rate
// alerts, with windows scaled to the SLO window — and answers the native
// SLO API (/api/mesh/v1/slos): SLI, error budget, burn rates, firing
// alerts and the failing traces. The rules run in the server's rules
// engine (package ruler); docs/slo.md describes the rules.
package slo
