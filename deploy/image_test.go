package deploy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// imageConfig is what `podman image inspect` says about an image.
type imageConfig struct {
	Config struct {
		User         string
		Env          []string
		Entrypoint   []string
		Cmd          []string
		WorkingDir   string
		ExposedPorts map[string]struct{}
		Volumes      map[string]struct{}
		Labels       map[string]string
		StopSignal   string
	}
	HealthCheck struct {
		Test []string
	}
}

// TestContainerImage builds the Dockerfile's final stage with podman from
// a binary built here (no base image can be pulled on this machine, and
// the final stage needs none), then runs what the image contains the way
// its config says: the entrypoint and command, as its user, with its
// environment and working directory, chrooted into a copy of its root
// filesystem in which only /data belongs to that user. `podman run` is not
// used: in this sandbox every container start fails with "crun: setrlimit
// RLIMIT_NOFILE: Operation not permitted" (docs/DEPLOY.md). It checks /health, /ready, a post
// and a stream, the image's own HEALTHCHECK command, a clean SIGTERM, and
// that nothing outside /data changed.
func TestContainerImage(t *testing.T) {
	podman := needTool(t, "podman", "apt-get install podman")
	bin := brokerBinary(t)
	root := repoRoot(t)

	// The build context: the Dockerfile, the image's files and dist/.
	bctx := t.TempDir()
	copyInto(t, filepath.Join(root, "Dockerfile"), filepath.Join(bctx, "Dockerfile"))
	for _, f := range []string{"passwd", "group", "data/README"} {
		copyInto(t, filepath.Join(root, "deploy/image", f), filepath.Join(bctx, "deploy/image", f))
	}
	copyInto(t, bin, filepath.Join(bctx, "dist/claudemesh-broker"))
	copyInto(t, "/etc/ssl/certs/ca-certificates.crt", filepath.Join(bctx, "dist/ca-certificates.crt"))

	var b [6]byte
	_, _ = rand.Read(b[:])
	tag := "localhost/claudemesh-broker:deploytest-" + hex.EncodeToString(b[:])
	// Only the tag goes; podman keeps the stage layers as its build cache.
	t.Cleanup(func() { _ = exec.Command(podman, "rmi", "-f", tag).Run() })
	out, err := exec.Command(podman, "build", "--format", "docker", "--build-arg", "BINARY_FROM=prebuilt",
		"--build-arg", "VERSION="+testVersion, "--build-arg", "REVISION=deploytest", "-t", tag, bctx).CombinedOutput()
	if err != nil {
		t.Fatalf("podman build: %v\n%s", err, out)
	}

	out, err = exec.Command(podman, "image", "inspect", tag).Output()
	if err != nil {
		t.Fatalf("podman image inspect: %v", err)
	}
	var cfgs []imageConfig
	if err := json.Unmarshal(out, &cfgs); err != nil || len(cfgs) != 1 {
		t.Fatalf("image inspect: %v (%d images)", err, len(cfgs))
	}
	ic := cfgs[0].Config
	checks := []struct {
		what      string
		got, want any
	}{
		{"entrypoint", ic.Entrypoint, []string{"/claudemesh-broker"}},
		{"cmd", ic.Cmd, []string{"serve"}},
		{"user", ic.User, "10001:10001"},
		{"workdir", ic.WorkingDir, "/data"},
		{"healthcheck", cfgs[0].HealthCheck.Test, []string{"CMD", "/claudemesh-broker", "healthcheck"}},
		{"version label", ic.Labels["org.opencontainers.image.version"], testVersion},
		{"revision label", ic.Labels["org.opencontainers.image.revision"], "deploytest"},
		{"title label", ic.Labels["org.opencontainers.image.title"], "claudemesh-broker"},
	}
	for _, c := range checks {
		if !equalJSON(c.got, c.want) {
			t.Errorf("image %s = %v, want %v", c.what, c.got, c.want)
		}
	}
	if _, ok := ic.ExposedPorts["7900/tcp"]; !ok {
		t.Errorf("image exposes %v, want 7900/tcp", ic.ExposedPorts)
	}
	if _, ok := ic.Volumes["/data"]; !ok {
		t.Errorf("image volumes %v, want /data", ic.Volumes)
	}
	if !slices.Contains(ic.Env, "CLAUDEMESH_SQLITE_PATH=/data/claudemesh.db") {
		t.Errorf("image env %v lacks the SQLite path in /data", ic.Env)
	}

	// The image's root filesystem, copied out of podman's storage.
	out, err = exec.Command(podman, "image", "mount", tag).Output()
	if err != nil {
		t.Fatalf("podman image mount: %v", err)
	}
	mounted := strings.TrimSpace(string(out))
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	cpOut, cpErr := exec.Command("cp", "-a", mounted+"/.", rootfs+"/").CombinedOutput()
	_ = exec.Command(podman, "image", "unmount", tag).Run()
	if cpErr != nil {
		t.Fatalf("copy the image's root filesystem: %v\n%s", cpErr, cpOut)
	}
	if err := os.Chmod(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	uid, gid := parseUser(t, ic.User)
	var files []string
	_ = filepath.WalkDir(rootfs, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			files = append(files, strings.TrimPrefix(p, rootfs))
		}
		return nil
	})
	for _, want := range []string{"/claudemesh-broker", "/etc/passwd", "/etc/group", "/etc/ssl/certs/ca-certificates.crt", "/data"} {
		if !slices.Contains(files, want) {
			t.Errorf("image lacks %s (has %v)", want, files)
		}
	}
	if st, err := os.Stat(filepath.Join(rootfs, "data")); err != nil || st.Sys().(*syscall.Stat_t).Uid != uid {
		t.Errorf("/data is not owned by the image's user %d", uid)
	}
	passwd, _ := os.ReadFile(filepath.Join(rootfs, "etc/passwd"))
	if !strings.Contains(string(passwd), ":"+strconv.Itoa(int(uid))+":") {
		t.Errorf("/etc/passwd has no line for uid %d:\n%s", uid, passwd)
	}
	before := snapshot(t, rootfs)

	addr := freeAddr(t)
	env := append(slices.Clone(ic.Env), "BROKER_ADDR="+addr) // docker run -e BROKER_ADDR=…
	inImage := func(args ...string) *exec.Cmd {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env, cmd.Dir = env, ic.WorkingDir
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: rootfs, Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}}}
		return cmd
	}
	broker := startProc(t, inImage(append(slices.Clone(ic.Entrypoint), ic.Cmd...)...))
	base := "http://" + addr
	waitReady(t, broker, base+"/ready")

	resp, err := http.Get(base + "/health")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/health: %v %v", err, resp)
	}
	resp.Body.Close()
	a := newAPI(base)
	_, peers := newMesh(t, a, 1)
	seq, err := a.post(context.Background(), peers[0].Key, "image-1", "hello from the image")
	if err != nil || seq != 1 {
		t.Fatalf("post: seq %d, %v", seq, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/topics/general/stream?since=0", nil)
	req.Header.Set("Authorization", "Bearer "+peers[0].Key)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var got sseEvent
	_ = readSSE(resp.Body, func(ev sseEvent) bool {
		if ev.ID == "" {
			return true
		}
		got = ev
		return false
	})
	resp.Body.Close()
	if got.ID != "1" || !strings.Contains(got.Data, `"seq":1`) {
		t.Errorf("stream's first event = %+v, want the post with seq 1", got)
	}

	// The image's own HEALTHCHECK, run the way a container engine runs it.
	hc := cfgs[0].HealthCheck.Test
	if out, err := inImage(hc[1:]...).CombinedOutput(); err != nil {
		t.Errorf("HEALTHCHECK %v: %v\n%s", hc, err, out)
	}
	if out, err := inImage("/claudemesh-broker", "version").CombinedOutput(); err != nil || !strings.Contains(string(out), testVersion) {
		t.Errorf("version in the image: %v %q", err, out)
	}

	if err := broker.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("broker after SIGTERM: %v; log:\n%s", err, broker.log.String())
	}
	after := snapshot(t, rootfs)
	for p, sum := range after {
		if strings.HasPrefix(p, "/data/") {
			continue
		}
		if before[p] != sum {
			t.Errorf("the broker wrote outside /data: %s", p)
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			t.Errorf("the broker removed %s", p)
		}
	}
	if _, ok := after["/data/claudemesh.db"]; !ok {
		t.Errorf("no database in /data: %v", keys(after))
	}
}

// snapshot maps every path under root to its size, mode and mtime.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(p, root)
		if rel == "" {
			rel = "/"
		}
		mt := info.ModTime().UnixNano()
		if d.IsDir() && rel == "/data" {
			mt = 0 // the volume's own directory changes as files appear in it
		}
		m[rel] = info.Mode().String() + " " + strconv.FormatInt(info.Size(), 10) + " " + strconv.FormatInt(mt, 10)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func parseUser(t *testing.T, u string) (uint32, uint32) {
	t.Helper()
	us, gs, _ := strings.Cut(u, ":")
	uid, err1 := strconv.ParseUint(us, 10, 32)
	gid, err2 := strconv.ParseUint(gs, 10, 32)
	if err1 != nil || err2 != nil || uid == 0 {
		t.Fatalf("image user %q is not a numeric non-root uid:gid", u)
	}
	return uint32(uid), uint32(gid)
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func copyInto(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, st.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
}
