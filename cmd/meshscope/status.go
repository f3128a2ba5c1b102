package main

import (
	"flag"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/meshscope/meshscope/query/promapi"
)

// serverStatus is what the Prometheus status endpoints report about this
// server: its flags with their effective values (after the config file),
// its effective configuration as YAML with secrets redacted, its start time
// and the TSDB retention.
func serverStatus(cfg serverConfig, start time.Time) promapi.Status {
	c := redacted(cfg)
	fs := flag.NewFlagSet("meshscope server", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	bindServerFlags(fs, &c)
	flags := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { flags[f.Name] = f.Value.String() })
	y, err := yaml.Marshal(c)
	if err != nil {
		y = []byte("# encoding the configuration failed: " + err.Error() + "\n")
	}
	return promapi.Status{
		StartTime:        start,
		Flags:            flags,
		ConfigYAML:       string(y),
		StorageRetention: model.Duration(c.Metrics.Retention).String(),
	}
}

// redacted hides the password of the ClickHouse DSN.
func redacted(cfg serverConfig) serverConfig {
	if u, err := url.Parse(cfg.Traces.ClickHouse.DSN); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "SECRET")
			cfg.Traces.ClickHouse.DSN = strings.Replace(u.String(), ":SECRET@", ":<secret>@", 1)
		}
	}
	return cfg
}
