package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// dockerfileFacts reads what the recipes must agree with from the
// Dockerfile: the exposed port, the volume and the entrypoint.
func dockerfileFacts(t *testing.T) (port, volume, entrypoint string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	grab := func(re string) string {
		m := regexp.MustCompile(`(?m)^` + re).FindStringSubmatch(string(b))
		if m == nil {
			t.Fatalf("Dockerfile has no line matching %s", re)
		}
		return m[1]
	}
	return grab(`EXPOSE (\d+)$`), grab(`VOLUME (\S+)$`), grab(`ENTRYPOINT \["([^"]+)"\]$`)
}

// brokerCommands lists the broker's commands from its own usage line, so a
// recipe that names a command the binary lacks fails here.
func brokerCommands(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(brokerBinary(t), "help").Output()
	if err != nil {
		t.Fatalf("claudemesh-broker help: %v", err)
	}
	return string(out)
}

// TestComposeFile loads deploy/compose.yaml with compose-go, the library
// Docker Compose itself uses, which validates it against the Compose
// specification's schema, and checks the topology: PostgreSQL, NATS, a
// one-shot migration, two broker replicas on both, and Caddy with TLS ports
// whose address is the brokers' only trusted proxy.
func TestComposeFile(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "deploy")
	load := func(env []string) (*types.Project, error) {
		opts, err := cli.NewProjectOptions([]string{filepath.Join(dir, "compose.yaml")},
			cli.WithWorkingDirectory(dir), cli.WithEnv(env), cli.WithName("claudemesh"))
		if err != nil {
			return nil, err
		}
		return opts.LoadProject(context.Background())
	}
	if _, err := load(nil); err == nil || !strings.Contains(err.Error(), "POSTGRES_PASSWORD") {
		t.Errorf("compose.yaml loads without POSTGRES_PASSWORD: %v", err)
	}
	p, err := load([]string{"POSTGRES_PASSWORD=s3cret", "CLAUDEMESH_DOMAIN=mesh.example.com"})
	if err != nil {
		t.Fatalf("compose.yaml does not load: %v", err)
	}
	port, volume, entry := dockerfileFacts(t)
	for _, name := range []string{"postgres", "nats", "migrate", "broker-1", "broker-2", "caddy"} {
		if _, ok := p.Services[name]; !ok {
			t.Fatalf("compose.yaml lacks service %q (has %v)", name, p.ServiceNames())
		}
	}
	caddy := p.Services["caddy"]
	caddyIP := caddy.Networks["mesh"].Ipv4Address
	if caddyIP == "" {
		t.Fatal("caddy has no fixed address on the mesh network")
	}
	var published []string
	for _, pc := range caddy.Ports {
		published = append(published, pc.Published)
	}
	if !slices.Contains(published, "443") || !slices.Contains(published, "80") {
		t.Errorf("caddy publishes %v, want 80 and 443", published)
	}
	if !slices.ContainsFunc(caddy.Volumes, func(v types.ServiceVolumeConfig) bool { return v.Target == "/etc/caddy/Caddyfile" }) {
		t.Error("caddy does not mount the Caddyfile")
	}
	if up := caddy.Environment["CLAUDEMESH_UPSTREAMS"]; up == nil || *up != "broker-1:"+port+" broker-2:"+port {
		t.Errorf("caddy upstreams %v, want both brokers on %s", up, port)
	}
	if cmd := p.Services["migrate"].Command; !slices.Equal(cmd, []string{"migrate"}) || !strings.Contains(brokerCommands(t), "migrate") {
		t.Errorf("migrate service runs %v", cmd)
	}
	for _, name := range []string{"broker-1", "broker-2"} {
		s := p.Services[name]
		env := func(k string) string {
			if v := s.Environment[k]; v != nil {
				return *v
			}
			return ""
		}
		if !strings.HasPrefix(env("DATABASE_URL"), "postgres://claudemesh:s3cret@postgres:5432/") {
			t.Errorf("%s DATABASE_URL = %q", name, env("DATABASE_URL"))
		}
		if env("NATS_URL") != "nats://nats:4222" {
			t.Errorf("%s NATS_URL = %q", name, env("NATS_URL"))
		}
		if env("TRUSTED_PROXIES") != caddyIP {
			t.Errorf("%s trusts %q, want only Caddy's %s", name, env("TRUSTED_PROXIES"), caddyIP)
		}
		if d, ok := s.DependsOn["migrate"]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
			t.Errorf("%s does not wait for the migration: %+v", name, s.DependsOn)
		}
		if s.HealthCheck == nil || !slices.Equal(s.HealthCheck.Test, []string{"CMD", entry, "healthcheck"}) {
			t.Errorf("%s healthcheck %+v", name, s.HealthCheck)
		}
		if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) < 15*time.Second {
			t.Errorf("%s stop_grace_period %v leaves no room for the 10 s drain", name, s.StopGracePeriod)
		}
		if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") {
			t.Errorf("%s is not read-only with every capability dropped", name)
		}
		if s.Build == nil || filepath.Base(s.Build.Dockerfile) != "Dockerfile" {
			t.Errorf("%s build %+v", name, s.Build)
		}
	}
	_ = volume // the compose brokers run on PostgreSQL: no volume of their own
}

// flyConfig is the part of Fly's fly.toml reference the recipes use. Keys
// outside it fail the test (a typo Fly would silently ignore).
type flyConfig struct {
	App           string `toml:"app"`
	PrimaryRegion string `toml:"primary_region"`
	KillSignal    string `toml:"kill_signal"`
	KillTimeout   string `toml:"kill_timeout"`
	Build         struct {
		Dockerfile string            `toml:"dockerfile"`
		Args       map[string]string `toml:"args"`
	} `toml:"build"`
	Deploy struct {
		ReleaseCommand string `toml:"release_command"`
		Strategy       string `toml:"strategy"`
	} `toml:"deploy"`
	Env    map[string]string `toml:"env"`
	Mounts []struct {
		Source      string `toml:"source"`
		Destination string `toml:"destination"`
	} `toml:"mounts"`
	HTTPService struct {
		InternalPort       int    `toml:"internal_port"`
		ForceHTTPS         bool   `toml:"force_https"`
		AutoStopMachines   string `toml:"auto_stop_machines"`
		AutoStartMachines  bool   `toml:"auto_start_machines"`
		MinMachinesRunning int    `toml:"min_machines_running"`
		Concurrency        struct {
			Type      string `toml:"type"`
			SoftLimit int    `toml:"soft_limit"`
			HardLimit int    `toml:"hard_limit"`
		} `toml:"concurrency"`
		Checks []struct {
			GracePeriod string `toml:"grace_period"`
			Interval    string `toml:"interval"`
			Timeout     string `toml:"timeout"`
			Method      string `toml:"method"`
			Path        string `toml:"path"`
		} `toml:"checks"`
	} `toml:"http_service"`
	VM []struct {
		Memory  string `toml:"memory"`
		CPUKind string `toml:"cpu_kind"`
		CPUs    int    `toml:"cpus"`
	} `toml:"vm"`
}

// TestFlyConfigs parses fly.toml (PostgreSQL, several machines) and
// deploy/fly-sqlite.toml (one machine, a volume) with a TOML library and
// checks them against the Dockerfile and the broker.
func TestFlyConfigs(t *testing.T) {
	port, volume, _ := dockerfileFacts(t)
	for _, tc := range []struct {
		file             string
		release          string
		minMachines      int
		volume           bool
		dockerfileResolv string
	}{
		{"fly.toml", "migrate", 2, false, "Dockerfile"},
		{"deploy/fly-sqlite.toml", "", 1, true, "deploy/../Dockerfile"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var c flyConfig
			md, err := toml.DecodeFile(filepath.Join(repoRoot(t), tc.file), &c)
			if err != nil {
				t.Fatal(err)
			}
			if und := md.Undecoded(); len(und) > 0 {
				t.Errorf("keys this test does not know (typos?): %v", und)
			}
			if c.HTTPService.InternalPort == 0 || strings.TrimSpace(port) != itoa(c.HTTPService.InternalPort) {
				t.Errorf("internal_port %d, the image exposes %s", c.HTTPService.InternalPort, port)
			}
			if len(c.HTTPService.Checks) != 1 || c.HTTPService.Checks[0].Path != "/ready" || c.HTTPService.Checks[0].Method != "GET" {
				t.Errorf("http checks %+v, want GET /ready", c.HTTPService.Checks)
			}
			if c.Deploy.ReleaseCommand != tc.release {
				t.Errorf("release_command %q, want %q", c.Deploy.ReleaseCommand, tc.release)
			}
			if tc.release != "" && !strings.Contains(brokerCommands(t), tc.release) {
				t.Errorf("release_command %q is not a broker command", tc.release)
			}
			if c.HTTPService.MinMachinesRunning != tc.minMachines || c.HTTPService.AutoStopMachines != "off" {
				t.Errorf("machines: min %d auto_stop %q", c.HTTPService.MinMachinesRunning, c.HTTPService.AutoStopMachines)
			}
			if kt, err := time.ParseDuration(c.KillTimeout); err != nil || kt < 15*time.Second || c.KillSignal != "SIGTERM" {
				t.Errorf("kill %s after %q leaves no room for the drain", c.KillSignal, c.KillTimeout)
			}
			if _, err := os.Stat(filepath.Join(repoRoot(t), tc.dockerfileResolv)); err != nil || filepath.Base(c.Build.Dockerfile) != "Dockerfile" {
				t.Errorf("dockerfile %q: %v", c.Build.Dockerfile, err)
			}
			hasVolume := len(c.Mounts) == 1 && c.Mounts[0].Destination == volume
			if hasVolume != tc.volume {
				t.Errorf("mounts %+v (image volume %s), want a volume: %v", c.Mounts, volume, tc.volume)
			}
			if tc.volume && c.Env["CLAUDEMESH_SQLITE_PATH"] != volume+"/claudemesh.db" {
				t.Errorf("SQLite path %q is not on the volume", c.Env["CLAUDEMESH_SQLITE_PATH"])
			}
		})
	}
}

// TestRailwayConfig decodes railway.json strictly (unknown keys fail) into
// the fields of Railway's config-as-code reference it uses.
func TestRailwayConfig(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "railway.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Schema string `json:"$schema"`
		Build  struct {
			Builder        string `json:"builder"`
			DockerfilePath string `json:"dockerfilePath"`
		} `json:"build"`
		Deploy struct {
			PreDeployCommand        []string `json:"preDeployCommand"`
			HealthcheckPath         string   `json:"healthcheckPath"`
			HealthcheckTimeout      int      `json:"healthcheckTimeout"`
			RestartPolicyType       string   `json:"restartPolicyType"`
			RestartPolicyMaxRetries int      `json:"restartPolicyMaxRetries"`
			OverlapSeconds          int      `json:"overlapSeconds"`
			DrainingSeconds         int      `json:"drainingSeconds"`
			NumReplicas             int      `json:"numReplicas"`
		} `json:"deploy"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("railway.json: %v", err)
	}
	_, _, entry := dockerfileFacts(t)
	if c.Build.Builder != "DOCKERFILE" || c.Build.DockerfilePath != "Dockerfile" {
		t.Errorf("build %+v", c.Build)
	}
	// Railway runs a command in exec form in place of the ENTRYPOINT.
	if !slices.Equal(c.Deploy.PreDeployCommand, []string{entry + " migrate"}) {
		t.Errorf("preDeployCommand %v, want [%s migrate]", c.Deploy.PreDeployCommand, entry)
	}
	if c.Deploy.HealthcheckPath != "/ready" || c.Deploy.DrainingSeconds < 15 || c.Deploy.NumReplicas < 2 {
		t.Errorf("deploy %+v", c.Deploy)
	}
}

// TestCaddyfile adapts deploy/Caddyfile with Caddy itself, with the
// variables compose.yaml sets, and checks the proxy: both upstreams, the
// /ready health check, retries while a replica restarts, and streaming.
func TestCaddyfile(t *testing.T) {
	caddy := needTool(t, "caddy", "apt-get install caddy")
	cmd := exec.Command(caddy, "adapt", "--adapter", "caddyfile", "--config", filepath.Join(repoRoot(t), "deploy/Caddyfile"))
	cmd.Env = append(os.Environ(), "CLAUDEMESH_DOMAIN=mesh.example.com", "CLAUDEMESH_UPSTREAMS=broker-1:7900 broker-2:7900")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("caddy adapt: %v\n%s", err, stderr.String())
	}
	var cfg any
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	compact, _ := json.Marshal(cfg)
	for _, want := range []string{`"host":["mesh.example.com"]`, `{"dial":"broker-1:7900"}`, `{"dial":"broker-2:7900"}`,
		`"uri":"/ready"`, `"flush_interval":-1`, `"try_duration":10000000000`, `"policy":"least_conn"`} {
		if !strings.Contains(string(compact), want) {
			t.Errorf("adapted Caddyfile lacks %s:\n%s", want, compact)
		}
	}
	// Caddy's default: it does not trust a client's X-Forwarded-For and
	// sends the address it saw, which the broker believes from Caddy only.
	if strings.Contains(string(compact), "trusted_proxies") {
		t.Error("Caddy is told to trust forwarded headers from its clients")
	}
}

// TestSystemdUnit verifies the unit with systemd-analyze (pointed at the
// binary built here) and checks its hardening and its loopback address.
func TestSystemdUnit(t *testing.T) {
	sa := needTool(t, "systemd-analyze", "apt-get install systemd")
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy/claudemesh-broker.service"))
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, want := range []string{"DynamicUser=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "NoNewPrivileges=yes",
		"StateDirectory=claudemesh", "CapabilityBoundingSet=\n", "Environment=BROKER_ADDR=127.0.0.1:7900", "Environment=TRUSTED_PROXIES=127.0.0.1",
		"ExecStartPre=/usr/local/bin/claudemesh-broker migrate", "ExecStart=/usr/local/bin/claudemesh-broker serve", "KillSignal=SIGTERM"} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q", want)
		}
	}
	path := filepath.Join(t.TempDir(), "claudemesh-broker.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(unit, "/usr/local/bin/claudemesh-broker", brokerBinary(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sa, "verify", path).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
