package meshcrypto

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"

	"filippo.io/edwards25519"
	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/nacl/box"
)

func newIdentity(t testing.TB) Identity {
	t.Helper()
	id, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func newTopicKey(t testing.TB) [TopicKeySize]byte {
	t.Helper()
	k, err := NewTopicKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// flipB64 decodes s, flips one bit of byte i and re-encodes, modelling a
// ciphertext altered in storage or in transit.
func flipB64(t *testing.T, s string, i int) string {
	t.Helper()
	b := mustB64(t, s)
	b[i] ^= 0x01
	return encodeB64(b)
}

func TestGenerateIdentity(t *testing.T) {
	a, b := newIdentity(t), newIdentity(t)
	if a.PublicKeyHex() == b.PublicKeyHex() {
		t.Fatal("two generated identities share a key")
	}
	if got := a.PublicKeyHex(); len(got) != PublicKeyHexLen || strings.ToLower(got) != got {
		t.Fatalf("PublicKeyHex %q is not 64 lowercase hex chars", got)
	}
	pub, err := ParsePublicKeyHex(a.PublicKeyHex())
	if err != nil || !pub.Equal(a.PublicKey()) {
		t.Fatalf("ParsePublicKeyHex(PublicKeyHex) = %x, %v", pub, err)
	}
	if FormatPublicKeyHex(pub) != a.PublicKeyHex() {
		t.Fatal("FormatPublicKeyHex does not round-trip")
	}
	back, err := ParseSecretKeyHex(a.SecretKeyHex())
	if err != nil || back.PublicKeyHex() != a.PublicKeyHex() || back.xSec != a.xSec {
		t.Fatalf("ParseSecretKeyHex(SecretKeyHex) = %v, %v", back, err)
	}
	// The x25519 public key must be X25519(sk, base): the derived pair is a
	// real key pair, not just two conversions that happen to exist.
	xpk := a.X25519PublicKey()
	base, err := curve25519.X25519(a.xSec[:], curve25519.Basepoint)
	if err != nil || !bytes.Equal(base, xpk[:]) {
		t.Fatal("X25519PublicKey is not X25519(derived secret, base point)")
	}
	// Returned slices are copies: mutating them must not change the identity.
	a.PublicKey()[0] ^= 0xff
	a.PrivateKey()[0] ^= 0xff
	if a.PublicKeyHex() != back.PublicKeyHex() || a.SecretKeyHex() != back.SecretKeyHex() {
		t.Fatal("PublicKey/PrivateKey return aliases of the identity's key")
	}
	sig := ed25519.Sign(a.PrivateKey(), []byte("hello"))
	if !ed25519.Verify(pub, []byte("hello"), sig) {
		t.Fatal("PrivateKey does not sign for PublicKey")
	}
}

func TestIdentityNeverPrintsSecret(t *testing.T) {
	id := newIdentity(t)
	secret := id.SecretKeyHex()[:PublicKeyHexLen] // the seed half
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(verb, id)
		if strings.Contains(out, secret) || !strings.Contains(out, id.PublicKeyHex()) {
			t.Errorf("fmt %s of Identity = %q: must show the public key and never the seed", verb, out)
		}
		if ptr := fmt.Sprintf(verb, &id); strings.Contains(ptr, secret) {
			t.Errorf("fmt %s of *Identity leaks the seed", verb)
		}
	}
}

func TestParsePublicKeyHex(t *testing.T) {
	good := newIdentity(t).PublicKeyHex()
	gp, _ := new(edwards25519.Point).SetBytes(mustHex(t, good))
	// A prime-order point plus the order-2 point (0, -1): on the curve, not
	// small order, but not in the prime-order subgroup.
	order2, _ := new(edwards25519.Point).SetBytes(mustHex(t, "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"))
	mixed := hex.EncodeToString(new(edwards25519.Point).Add(gp, order2).Bytes())
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"valid", good, true},
		{"uppercase", strings.ToUpper(good), false},
		{"63 chars", good[:63], false},
		{"65 chars", good + "0", false},
		{"empty", "", false},
		{"non-hex", "zz" + good[2:], false},
		{"whitespace", " " + good[1:], false},
		{"identity point (small order)", "0100000000000000000000000000000000000000000000000000000000000000", false},
		{"all zero (order 4)", strings.Repeat("0", 64), false},
		{"mixed order", mixed, false},
		{"not on curve", "0200000000000000000000000000000000000000000000000000000000000000", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePublicKeyHex(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("ParsePublicKeyHex(%q) err = %v, want ok=%v", tt.in, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidPublicKey) {
				t.Fatalf("error %v does not wrap ErrInvalidPublicKey", err)
			}
		})
	}
}

func TestParseSecretKeyHex(t *testing.T) {
	id := newIdentity(t)
	other := newIdentity(t)
	sk := id.SecretKeyHex()
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"seed||pk (libsodium, 128 hex)", sk, true},
		{"seed only (64 hex)", sk[:64], true},
		{"uppercase accepted for secrets", strings.ToUpper(sk), true},
		{"pk half from another key", sk[:64] + other.PublicKeyHex(), false},
		{"wrong length", sk[:100], false},
		{"odd length", sk[:63], false},
		{"not hex", "g" + sk[1:], false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSecretKeyHex(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if err != nil {
				if !errors.Is(err, ErrInvalidSecretKey) {
					t.Fatalf("error %v does not wrap ErrInvalidSecretKey", err)
				}
				return
			}
			if got.PublicKeyHex() != id.PublicKeyHex() {
				t.Fatal("parsed a different identity")
			}
		})
	}
	if _, err := IdentityFromSeed(make([]byte, 31)); !errors.Is(err, ErrInvalidSecretKey) {
		t.Fatalf("IdentityFromSeed(31 bytes) err = %v", err)
	}
	if _, err := Ed25519PrivateKeyToX25519(make([]byte, 32)); !errors.Is(err, ErrInvalidSecretKey) {
		t.Fatalf("Ed25519PrivateKeyToX25519(32 bytes) err = %v", err)
	}
	if _, err := Ed25519PublicKeyToX25519(make([]byte, 31)); !errors.Is(err, ErrInvalidPublicKey) {
		t.Fatalf("Ed25519PublicKeyToX25519(31 bytes) err = %v", err)
	}
}

func TestZeroIdentity(t *testing.T) {
	var zero Identity
	bob := newIdentity(t)
	tk := newTopicKey(t)
	if !zero.IsZero() || bob.IsZero() {
		t.Fatal("IsZero is wrong")
	}
	if zero.PublicKeyHex() != "" || zero.SecretKeyHex() != "" || zero.PublicKey() != nil || zero.PrivateKey() != nil {
		t.Fatal("zero Identity must expose no key")
	}
	enc, nonce, err := SealTopicKey(tk, bob, bob.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	ct, dn, err := SealDirect([]byte("x"), bob, bob.PublicKeyHex())
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string]error{}
	_, _, checks["SealTopicKey"] = SealTopicKey(tk, zero, bob.PublicKey())
	_, checks["OpenTopicKey"] = OpenTopicKey(enc, nonce, zero)
	_, _, checks["SealDirect"] = SealDirect([]byte("x"), zero, bob.PublicKeyHex())
	_, checks["OpenDirect"] = OpenDirect(ct, dn, zero, bob.PublicKeyHex())
	for name, err := range checks {
		if !errors.Is(err, ErrNoIdentity) {
			t.Errorf("%s with zero Identity: err = %v, want ErrNoIdentity", name, err)
		}
	}
}

func TestTopicKeySealRoundTrip(t *testing.T) {
	alice, bob, carol := newIdentity(t), newIdentity(t), newIdentity(t)
	tk := newTopicKey(t)
	tests := []struct {
		name              string
		sender, recipient Identity
	}{
		{"creator self-seal", alice, alice},
		{"creator seals for joiner", alice, bob},
		{"joiner re-seals for a later joiner", bob, carol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc, nonce, err := SealTopicKey(tk, tt.sender, tt.recipient.PublicKey())
			if err != nil {
				t.Fatal(err)
			}
			blob, n := mustB64(t, enc), mustB64(t, nonce)
			if len(blob) != SealedTopicKeySize || len(n) != NonceSize {
				t.Fatalf("seal is %d bytes with a %d-byte nonce, want 80 and 24", len(blob), len(n))
			}
			if xpk := tt.sender.X25519PublicKey(); !bytes.Equal(blob[:32], xpk[:]) {
				t.Fatal("seal does not start with the sender's x25519 public key")
			}
			if err := ValidSealBlob(enc, nonce); err != nil {
				t.Fatalf("ValidSealBlob refuses a fresh seal: %v", err)
			}
			if sx, err := SealSender(enc); err != nil || sx != tt.sender.X25519PublicKey() {
				t.Fatalf("SealSender = %x, %v", sx, err)
			}
			got, err := OpenTopicKey(enc, nonce, tt.recipient)
			if err != nil || got != tk {
				t.Fatalf("OpenTopicKey = %x, %v", got, err)
			}
		})
	}
	// Fresh nonces: sealing the same key twice must not repeat bytes.
	e1, n1, _ := SealTopicKey(tk, alice, bob.PublicKey())
	e2, n2, _ := SealTopicKey(tk, alice, bob.PublicKey())
	if n1 == n2 || e1 == e2 {
		t.Fatal("two seals reused a nonce")
	}
}

func TestTopicKeySealFailures(t *testing.T) {
	alice, bob, carol := newIdentity(t), newIdentity(t), newIdentity(t)
	tk := newTopicKey(t)
	enc, nonce, err := SealTopicKey(tk, alice, bob.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenTopicKey(enc, nonce, carol); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("wrong recipient: err = %v, want ErrDecrypt", err)
	}
	// Every single flipped bit, in the sender prefix, the tag, the sealed key
	// or the nonce, must make the seal fail to open.
	for i := range SealedTopicKeySize {
		if _, err := OpenTopicKey(flipB64(t, enc, i), nonce, bob); err == nil {
			t.Fatalf("seal with byte %d flipped still opens", i)
		}
	}
	for i := range NonceSize {
		if _, err := OpenTopicKey(enc, flipB64(t, nonce, i), bob); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("nonce byte %d flipped: err = %v, want ErrDecrypt", i, err)
		}
	}
	// A sender prefix replaced by a small-order point is refused before any
	// Diffie-Hellman, as crypto_box_open_easy refuses it.
	blob := mustB64(t, enc)
	clear(blob[:32])
	if _, err := OpenTopicKey(encodeB64(blob), nonce, bob); !errors.Is(err, ErrWeakX25519Key) {
		t.Fatalf("all-zero sender prefix: err = %v, want ErrWeakX25519Key", err)
	}
	if _, _, err := SealTopicKey(tk, alice, make(ed25519.PublicKey, 32)); !errors.Is(err, ErrInvalidPublicKey) {
		t.Fatalf("sealing to an all-zero ed25519 key: err = %v", err)
	}
	malformed := []struct{ name, enc, nonce string }{
		{"short blob", encodeB64(mustB64(t, enc)[:79]), nonce},
		{"short nonce", enc, encodeB64(make([]byte, 23))},
		{"bad base64", "!" + enc[1:], nonce},
	}
	for _, m := range malformed {
		if _, err := OpenTopicKey(m.enc, m.nonce, bob); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", m.name, err)
		}
	}
}

func TestValidSealBlob(t *testing.T) {
	alice, bob := newIdentity(t), newIdentity(t)
	enc, nonce, err := SealTopicKey(newTopicKey(t), alice, bob.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	blob := mustB64(t, enc)
	withPrefix := func(prefix []byte) string {
		b := bytes.Clone(blob)
		copy(b, prefix)
		return encodeB64(b)
	}
	hexPrefix := func(h string) string { return withPrefix(mustHex(t, h)) }
	topBit := bytes.Clone(blob[:32])
	topBit[31] |= 0x80
	// A valid prime-order point plus the order-2 point, mapped to Montgomery:
	// X25519 accepts it, but no key pair ever produces it.
	ap, _ := new(edwards25519.Point).SetBytes(alice.PublicKey())
	o2, _ := new(edwards25519.Point).SetBytes(mustHex(t, "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"))
	mixed := new(edwards25519.Point).Add(ap, o2).BytesMontgomery()
	// u = 2 is on the twist: x25519 runs on it, libsodium's box too.
	twist := make([]byte, 32)
	twist[0] = 2
	if isOnCurve(new(big.Int).SetInt64(2)) {
		t.Fatal("test assumption: u=2 should be on the twist")
	}
	withLen := func(n int) string {
		b := make([]byte, n)
		copy(b, blob)
		return encodeB64(b)
	}

	tests := []struct {
		name, enc, nonce string
		want             error
	}{
		{"valid", enc, nonce, nil},
		{"bad base64", "%%%" + enc[3:], nonce, ErrMalformed},
		{"url-safe alphabet", strings.ReplaceAll(encodeB64(bytes.Repeat([]byte{0xff}, 80)), "/", "_"), nonce, ErrMalformed},
		{"unpadded", strings.TrimRight(enc, "="), nonce, ErrMalformed},
		{"line break", enc[:40] + "\n" + enc[40:], nonce, ErrMalformed},
		// 80 bytes end in a 2-byte quantum: 3 characters and one "=", whose
		// last character carries 2 unused bits that must be zero.
		{"non-canonical padding bits", enc[:len(enc)-2] + nextB64Char(enc[len(enc)-2]) + "=", nonce, ErrMalformed},
		{"empty", "", nonce, ErrMalformed},
		{"79 bytes", withLen(79), nonce, ErrMalformed},
		{"81 bytes", withLen(81), nonce, ErrMalformed},
		{"23-byte nonce", enc, encodeB64(make([]byte, 23)), ErrMalformed},
		{"25-byte nonce", enc, encodeB64(make([]byte, 25)), ErrMalformed},
		{"nonce bad base64", enc, "*" + nonce[1:], ErrMalformed},
		{"low order: all zero", withPrefix(make([]byte, 32)), nonce, ErrWeakX25519Key},
		{"low order: u=1", hexPrefix("0100000000000000000000000000000000000000000000000000000000000000"), nonce, ErrWeakX25519Key},
		{"low order: order 8", hexPrefix("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"), nonce, ErrWeakX25519Key},
		{"low order: order 8 (b)", hexPrefix("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"), nonce, ErrWeakX25519Key},
		{"low order: p-1", hexPrefix("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"), nonce, ErrWeakX25519Key},
		{"low order: p (=0)", hexPrefix("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"), nonce, ErrWeakX25519Key},
		{"low order: p+1 (=1)", hexPrefix("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"), nonce, ErrWeakX25519Key},
		{"low order: zero with top bit", hexPrefix("0000000000000000000000000000000000000000000000000000000000000080"), nonce, ErrWeakX25519Key},
		{"top bit set on a real key", withPrefix(topBit), nonce, ErrWeakX25519Key},
		{"non-canonical u = p+2", hexPrefix("efffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"), nonce, ErrWeakX25519Key},
		{"twist point", withPrefix(twist), nonce, ErrWeakX25519Key},
		{"mixed-order point", withPrefix(mixed), nonce, ErrWeakX25519Key},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidSealBlob(tt.enc, tt.nonce)
			if tt.want == nil && err != nil {
				t.Fatalf("err = %v, want nil", err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// nextB64Char returns the base64 character after c, used to set the unused
// low bits of a final quantum (non-canonical but decodable by lax decoders).
func nextB64Char(c byte) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	i := strings.IndexByte(alphabet, c)
	return string(alphabet[(i+1)%64])
}

// Independent model of Curve25519 in math/big, to test x25519PrimeOrderPoint
// against arithmetic that shares no code with edwards25519.
var (
	bigP = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	bigL = func() *big.Int {
		l, _ := new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)
		return l
	}()
	bigA24 = big.NewInt(121665)
)

// isOnCurve reports whether u³ + 486662u² + u is a square mod p.
func isOnCurve(u *big.Int) bool {
	u2 := new(big.Int).Mul(u, u)
	rhs := new(big.Int).Mul(u2, u)
	rhs.Add(rhs, new(big.Int).Mul(big.NewInt(486662), u2))
	rhs.Add(rhs, u)
	rhs.Mod(rhs, bigP)
	return rhs.Sign() == 0 || big.Jacobi(rhs, bigP) == 1
}

// ladderIsIdentity runs the RFC 7748 Montgomery ladder for the unclamped
// scalar k and reports whether [k]P is the point at infinity (Z = 0).
func ladderIsIdentity(k, u *big.Int) bool {
	mod := func(x *big.Int) *big.Int { return x.Mod(x, bigP) }
	x1 := new(big.Int).Set(u)
	x2, z2 := big.NewInt(1), big.NewInt(0)
	x3, z3 := new(big.Int).Set(u), big.NewInt(1)
	swap := uint(0)
	for i := k.BitLen() - 1; i >= 0; i-- {
		bit := k.Bit(i)
		if swap^bit == 1 {
			x2, x3 = x3, x2
			z2, z3 = z3, z2
		}
		swap = bit
		a := mod(new(big.Int).Add(x2, z2))
		aa := mod(new(big.Int).Mul(a, a))
		b := mod(new(big.Int).Sub(x2, z2))
		bb := mod(new(big.Int).Mul(b, b))
		e := mod(new(big.Int).Sub(aa, bb))
		c := mod(new(big.Int).Add(x3, z3))
		d := mod(new(big.Int).Sub(x3, z3))
		da := mod(new(big.Int).Mul(d, a))
		cb := mod(new(big.Int).Mul(c, b))
		x3 = mod(new(big.Int).Exp(mod(new(big.Int).Add(da, cb)), big.NewInt(2), bigP))
		z3 = mod(new(big.Int).Mul(x1, mod(new(big.Int).Exp(mod(new(big.Int).Sub(da, cb)), big.NewInt(2), bigP))))
		x2 = mod(new(big.Int).Mul(aa, bb))
		z2 = mod(new(big.Int).Mul(e, mod(new(big.Int).Add(aa, mod(new(big.Int).Mul(bigA24, e))))))
	}
	if swap == 1 {
		z2 = z3
	}
	return z2.Sign() == 0
}

func leBig(b []byte) *big.Int {
	be := make([]byte, len(b))
	for i := range b {
		be[len(b)-1-i] = b[i]
	}
	return new(big.Int).SetBytes(be)
}

func TestX25519PrimeOrderPointModel(t *testing.T) {
	model := func(u *[32]byte) bool {
		if u[31]&0x80 != 0 {
			return false
		}
		n := leBig(u[:])
		if n.Cmp(bigP) >= 0 || n.Sign() == 0 || !isOnCurve(n) {
			return false
		}
		return ladderIsIdentity(bigL, n)
	}
	var inputs [][32]byte
	// Random bytes: mostly twist points or points with a small component.
	for range 300 {
		var u [32]byte
		rand.Read(u[:])
		u[31] &= 0x7f
		inputs = append(inputs, u)
	}
	// Real public keys, and the same keys with each torsion point added.
	torsion := []string{
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // order 2
		"0000000000000000000000000000000000000000000000000000000000000000", // order 4
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", // order 8
	}
	for range 20 {
		id := newIdentity(t)
		inputs = append(inputs, id.X25519PublicKey())
		p, _ := new(edwards25519.Point).SetBytes(id.PublicKey())
		for _, h := range torsion {
			tp, err := new(edwards25519.Point).SetBytes(mustHex(t, h))
			if err != nil {
				t.Fatal(err)
			}
			inputs = append(inputs, [32]byte(new(edwards25519.Point).Add(p, tp).BytesMontgomery()))
		}
	}
	for _, s := range x25519SmallOrder {
		inputs = append(inputs, s)
	}
	var accepted int
	for _, u := range inputs {
		got, want := x25519PrimeOrderPoint(&u), model(&u)
		if got != want {
			t.Fatalf("x25519PrimeOrderPoint(%x) = %v, math/big model says %v", u, got, want)
		}
		if got {
			accepted++
		}
	}
	if accepted < 20 {
		t.Fatalf("only %d inputs accepted; the real keys alone should be 20", accepted)
	}
	t.Logf("%d inputs agree with the math/big model (%d accepted)", len(inputs), accepted)
}

// TestBoxKeyMatchesXCrypto: our libsodium-style beforenm is x/crypto's
// box.Precompute plus the weak-key refusal, nothing else.
func TestBoxKeyMatchesXCrypto(t *testing.T) {
	for range 20 {
		a, b := newIdentity(t), newIdentity(t)
		bx := b.X25519PublicKey()
		got, err := boxKey(&bx, &a.xSec)
		if err != nil {
			t.Fatal(err)
		}
		var want [32]byte
		box.Precompute(&want, &bx, &a.xSec)
		if *got != want {
			t.Fatal("boxKey differs from box.Precompute")
		}
	}
}

func TestDirectRoundTrip(t *testing.T) {
	alice, bob, carol := newIdentity(t), newIdentity(t), newIdentity(t)
	tests := []struct {
		name string
		msg  []byte
	}{
		{"empty", nil},
		{"text", []byte("deploy at 5? @bob")},
		{"binary", []byte{0, 1, 2, 0xff, 0xfe}},
		{"64 KiB", bytes.Repeat([]byte("x"), 64<<10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct, nonce, err := SealDirect(tt.msg, alice, bob.PublicKeyHex())
			if err != nil {
				t.Fatal(err)
			}
			if err := ValidCiphertext(ct, nonce); err != nil {
				t.Fatalf("ValidCiphertext: %v", err)
			}
			got, err := OpenDirect(ct, nonce, bob, alice.PublicKeyHex())
			if err != nil || !bytes.Equal(got, tt.msg) {
				t.Fatalf("OpenDirect = %q, %v", got, err)
			}
			// Wrong recipient, and a right recipient told the wrong sender.
			if _, err := OpenDirect(ct, nonce, carol, alice.PublicKeyHex()); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("wrong recipient: err = %v", err)
			}
			if _, err := OpenDirect(ct, nonce, bob, carol.PublicKeyHex()); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("wrong claimed sender: err = %v", err)
			}
			n := len(mustB64(t, ct))
			for _, i := range []int{0, Overhead - 1, Overhead, n - 1} {
				if i >= n {
					continue
				}
				if _, err := OpenDirect(flipB64(t, ct, i), nonce, bob, alice.PublicKeyHex()); !errors.Is(err, ErrDecrypt) {
					t.Fatalf("byte %d flipped: err = %v, want ErrDecrypt", i, err)
				}
			}
			if _, err := OpenDirect(ct, flipB64(t, nonce, 23), bob, alice.PublicKeyHex()); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("nonce flipped: err = %v", err)
			}
		})
	}
	if _, _, err := SealDirect([]byte("x"), alice, strings.ToUpper(bob.PublicKeyHex())); !errors.Is(err, ErrInvalidPublicKey) {
		t.Fatalf("uppercase recipient hex: err = %v", err)
	}
	if _, err := OpenDirect(encodeB64(make([]byte, 15)), encodeB64(make([]byte, 24)), bob, alice.PublicKeyHex()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("ciphertext shorter than the tag: err = %v", err)
	}
}

func TestV2RoundTrip(t *testing.T) {
	tk, other := newTopicKey(t), newTopicKey(t)
	tests := []struct {
		name string
		msg  []byte
	}{
		{"empty", []byte{}},
		{"text", []byte("héllo 🌍 #general")},
		{"1 MiB", bytes.Repeat([]byte{0xab}, 1<<20)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct, nonce, err := EncryptV2(tk, tt.msg)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(mustB64(t, ct)); got != len(tt.msg)+Overhead {
				t.Fatalf("ciphertext is %d bytes, want plaintext+16", got)
			}
			got, err := DecryptV2(tk, ct, nonce)
			if err != nil || !bytes.Equal(got, tt.msg) {
				t.Fatalf("DecryptV2 = %d bytes, %v", len(got), err)
			}
			if _, err := DecryptV2(other, ct, nonce); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("wrong topic key: err = %v", err)
			}
			for _, i := range []int{0, Overhead - 1, len(tt.msg) + Overhead - 1} {
				if _, err := DecryptV2(tk, flipB64(t, ct, i), nonce); !errors.Is(err, ErrDecrypt) {
					t.Fatalf("byte %d flipped: err = %v, want ErrDecrypt", i, err)
				}
			}
			if _, err := DecryptV2(tk, ct, flipB64(t, nonce, 0)); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("nonce flipped: err = %v", err)
			}
		})
	}
	_, n1, _ := EncryptV2(tk, []byte("a"))
	_, n2, _ := EncryptV2(tk, []byte("a"))
	if n1 == n2 {
		t.Fatal("EncryptV2 reused a nonce")
	}
}

func TestValidCiphertext(t *testing.T) {
	good := encodeB64(make([]byte, 24))
	tests := []struct {
		name, ct, nonce string
		ok              bool
	}{
		{"tag only (empty plaintext)", encodeB64(make([]byte, 16)), good, true},
		{"tag and body", encodeB64(make([]byte, 40)), good, true},
		{"shorter than tag", encodeB64(make([]byte, 15)), good, false},
		{"empty", "", good, false},
		{"bad base64", "abc", good, false},
		{"23-byte nonce", encodeB64(make([]byte, 16)), encodeB64(make([]byte, 23)), false},
		{"nonce with newline", encodeB64(make([]byte, 16)), good[:10] + "\r\n" + good[10:], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidCiphertext(tt.ct, tt.nonce)
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrMalformed)) {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestV1(t *testing.T) {
	tests := []struct{ in, body, back string }{
		{"", "", ""},
		{"hi @bob", "aGkgQGJvYg==", "hi @bob"},
		{"ünï 🌍", encodeB64([]byte("ünï 🌍")), "ünï 🌍"},
		{"bad \xff utf8", encodeB64([]byte("bad \uFFFD utf8")), "bad \uFFFD utf8"},
	}
	for _, tt := range tests {
		if got := EncodeV1(tt.in); got != tt.body {
			t.Errorf("EncodeV1(%q) = %q, want %q", tt.in, got, tt.body)
		}
		if got, err := DecodeV1(tt.body); err != nil || got != tt.back {
			t.Errorf("DecodeV1(%q) = %q, %v", tt.body, got, err)
		}
	}
	if _, err := DecodeV1(encodeB64([]byte{0xff, 0xfe})); !errors.Is(err, ErrMalformed) {
		t.Errorf("DecodeV1(non-UTF-8) err = %v", err)
	}
	if _, err := DecodeV1("not base64!"); !errors.Is(err, ErrMalformed) {
		t.Errorf("DecodeV1(bad base64) err = %v", err)
	}
}

// TestConcurrentUse shares identities and a topic key across goroutines; run
// with -race it shows an Identity is safe to share.
func TestConcurrentUse(t *testing.T) {
	alice, bob := newIdentity(t), newIdentity(t)
	tk := newTopicKey(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 16 {
		wg.Go(func() {
			msg := []byte(fmt.Sprintf("message %d", i))
			enc, nonce, err := SealTopicKey(tk, alice, bob.PublicKey())
			if err == nil {
				var got [32]byte
				got, err = OpenTopicKey(enc, nonce, bob)
				if err == nil && got != tk {
					err = errors.New("wrong topic key")
				}
			}
			if err == nil {
				var ct, n string
				if ct, n, err = SealDirect(msg, bob, alice.PublicKeyHex()); err == nil {
					var back []byte
					if back, err = OpenDirect(ct, n, alice, bob.PublicKeyHex()); err == nil && !bytes.Equal(back, msg) {
						err = errors.New("wrong direct plaintext")
					}
				}
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func BenchmarkSealTopicKey(b *testing.B) {
	alice, bob := newIdentity(b), newIdentity(b)
	tk := newTopicKey(b)
	pub := bob.PublicKey()
	for b.Loop() {
		if _, _, err := SealTopicKey(tk, alice, pub); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidSealBlob(b *testing.B) {
	alice, bob := newIdentity(b), newIdentity(b)
	enc, nonce, _ := SealTopicKey(newTopicKey(b), alice, bob.PublicKey())
	for b.Loop() {
		if err := ValidSealBlob(enc, nonce); err != nil {
			b.Fatal(err)
		}
	}
}
