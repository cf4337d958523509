// Package deploy holds the broker's deploy recipes (compose.yaml, Caddyfile,
// the systemd unit; the Dockerfile, fly.toml and railway.json sit at the
// repository root where their tools look). It has no code: its tests build
// and start the container image, validate every recipe with the libraries
// its tool uses, and measure a rolling restart of two replicas behind
// Caddy. docs/DEPLOY.md walks each target.
package deploy
