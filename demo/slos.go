package demo

import _ "embed"

// slosYAML are the SLOs the demo applies on start: one or more per service.
//
//go:embed slos.yaml
var slosYAML []byte

// guardsYAML are the guards the demo applies after the SLOs when it runs
// no rollout scenario (a rollout owns inventory's route meanwhile).
//
//go:embed guards.yaml
var guardsYAML []byte
