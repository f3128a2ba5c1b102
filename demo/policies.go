package demo

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"io"
	"net/http"
	"time"
)

// policiesYAML is the policy set the demo applies on start.
//
//go:embed policies.yaml
var policiesYAML []byte

// applyPolicies posts the demo's policy set to the server's apply API.
func applyPolicies(ctx context.Context, httpAddr string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+httpAddr+"/api/mesh/v1/apply", bytes.NewReader(policiesYAML))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/yaml")
	req.Header.Set("X-Meshscope-Who", "demo")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("demo: applying policies: %w", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<16))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("demo: applying policies: server answered %d: %s", res.StatusCode, bytes.TrimSpace(body))
	}
	return nil
}
