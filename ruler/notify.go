package ruler

import (
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/notifier"
)

// newNotifier builds the Prometheus notifier for static Alertmanager URLs.
func newNotifier(urls []string, reg prometheus.Registerer, logger *slog.Logger) (*notifier.Manager, error) {
	n := notifier.NewManager(&notifier.Options{QueueCapacity: 10000, DrainOnShutdown: true, Registerer: reg}, model.UTF8Validation, logger)
	conf := &config.Config{GlobalConfig: config.DefaultGlobalConfig}
	for _, s := range urls {
		u, err := parseAlertmanager(s)
		if err != nil {
			return nil, err
		}
		am := config.DefaultAlertmanagerConfig
		am.Scheme = u.Scheme
		am.PathPrefix = u.Path
		am.Timeout = model.Duration(10 * time.Second)
		conf.AlertingConfig.AlertmanagerConfigs = append(conf.AlertingConfig.AlertmanagerConfigs, &am)
	}
	if err := n.ApplyConfig(conf); err != nil {
		return nil, fmt.Errorf("alertmanagers: %w", err)
	}
	return n, nil
}

// runNotifier feeds the static targets to n and runs it until n.Stop.
func runNotifier(n *notifier.Manager, urls []string) {
	tsets := make(chan map[string][]*targetgroup.Group, 1)
	m := map[string][]*targetgroup.Group{}
	for i, s := range urls {
		u, _ := parseAlertmanager(s) // validated in New
		m["config-"+strconv.Itoa(i)] = []*targetgroup.Group{{
			Targets: []model.LabelSet{{model.AddressLabel: model.LabelValue(u.Host)}},
			Source:  s,
		}}
	}
	tsets <- m
	n.Run(tsets)
}
