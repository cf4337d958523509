package web_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh-go/meshcrypto"
)

// TestBrowserCryptoMatchesMeshcrypto runs the dashboard's crypto module in
// node and checks it both ways against meshcrypto: the browser opens a Go
// seal and a Go v2 body; Go opens the browser's seal and body; an identity
// made in the browser is a valid libsodium secret key for Go.
func TestBrowserCryptoMatchesMeshcrypto(t *testing.T) {
	node := needNode(t)
	browser, err := meshcrypto.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	goID, err := meshcrypto.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	key, err := meshcrypto.NewTopicKey()
	if err != nil {
		t.Fatal(err)
	}
	seal, sealNonce, err := meshcrypto.SealTopicKey(key, goID, browser.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	goText, jsText := "from Go: déploiement ✓ @ada", "from the browser: 部署 ✓ @grace"
	body, bodyNonce, err := meshcrypto.EncryptV2(key, []byte(goText))
	if err != nil {
		t.Fatal(err)
	}
	in, _ := json.Marshal(map[string]string{"browserPub": browser.PublicKeyHex(), "browserSecret": browser.SecretKeyHex(),
		"goPub": goID.PublicKeyHex(), "goSeal": seal, "goSealNonce": sealNonce, "goBody": body, "goBodyNonce": bodyNonce,
		"jsText": jsText, "v1": meshcrypto.EncodeV1("plain v1 ✓")})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("testdata", "crypto_check.mjs"))
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("crypto_check.mjs: %v\n%s", err, stderr.String())
	}
	var got struct {
		TopicKey, GoText, Seal, SealNonce, Body, BodyNonce, V1, FreshPub, FreshSecret string
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got.TopicKey != hex.EncodeToString(key[:]) || got.GoText != goText || got.V1 != "plain v1 ✓" {
		t.Errorf("browser opened Go's values as key %s, text %q, v1 %q", got.TopicKey, got.GoText, got.V1)
	}
	k2, err := meshcrypto.OpenTopicKey(got.Seal, got.SealNonce, goID)
	if err != nil || k2 != key {
		t.Errorf("Go could not open the browser's seal: %v", err)
	}
	sender, err := meshcrypto.SealSender(got.Seal)
	if xb := browser.X25519PublicKey(); err != nil || sender != xb {
		t.Errorf("browser seal's sender key is not the x25519 form of its identity: %v", err)
	}
	text, err := meshcrypto.DecryptV2(key, got.Body, got.BodyNonce)
	if err != nil || string(text) != jsText {
		t.Errorf("Go decrypted the browser's body as %q, %v", text, err)
	}
	fresh, err := meshcrypto.ParseSecretKeyHex(got.FreshSecret)
	if err != nil || fresh.PublicKeyHex() != got.FreshPub {
		t.Errorf("a browser-made identity is not a libsodium secret key for Go: %v", err)
	}
}

// needNode returns node, failing (not skipping) unless the browser tests
// are skipped knowingly.
func needNode(t *testing.T) string {
	t.Helper()
	if os.Getenv("CLAUDEMESH_TEST_SKIP_BROWSER") == "1" && !inCI() {
		t.Skip("CLAUDEMESH_TEST_SKIP_BROWSER=1")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not on PATH (set CLAUDEMESH_TEST_SKIP_BROWSER=1 to skip knowingly)")
	}
	return node
}
