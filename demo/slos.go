package demo

import _ "embed"

// slosYAML are the SLOs the demo applies on start: one or more per service.
//
//go:embed slos.yaml
var slosYAML []byte
