package models

import (
	"crypto/rand"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// MaxSlugLen is the longest mesh slug: the pattern ^[a-z0-9][a-z0-9-]{0,47}$.
const MaxSlugLen = 48

// translit spells letters that have no ASCII base form after removing
// diacritics (NFD) in ASCII: Latin letters of their own, Cyrillic and Greek.
// Scripts not listed here (CJK, Arabic, Hebrew, Indic, …) are not guessed
// at: a wrong romanisation is worse than none, and Slugify falls back to a
// random suffix for them.
var translit = map[rune]string{
	// Latin letters NFD does not decompose.
	'ß': "ss", 'æ': "ae", 'œ': "oe", 'ø': "o", 'đ': "d", 'ð': "d", 'þ': "th", 'ł': "l", 'ı': "i", 'ŀ': "l", 'ħ': "h", 'ŧ': "t", 'ŋ': "ng", 'ĸ': "k", 'ſ': "s",
	// Cyrillic (Russian, Ukrainian, Belarusian, Serbian, Macedonian, Bulgarian), a plain scholarly-ish scheme.
	'а': "a", 'б': "b", 'в': "v", 'г': "g", 'д': "d", 'е': "e", 'ё': "e", 'ж': "zh", 'з': "z", 'и': "i", 'й': "i",
	'к': "k", 'л': "l", 'м': "m", 'н': "n", 'о': "o", 'п': "p", 'р': "r", 'с': "s", 'т': "t", 'у': "u", 'ф': "f",
	'х': "kh", 'ц': "ts", 'ч': "ch", 'ш': "sh", 'щ': "shch", 'ъ': "", 'ы': "y", 'ь': "", 'э': "e", 'ю': "iu", 'я': "ia",
	'є': "ie", 'і': "i", 'ї': "i", 'ґ': "g", 'ў': "u", 'ђ': "dj", 'ј': "j", 'љ': "lj", 'њ': "nj", 'ћ': "c", 'џ': "dz",
	'ѓ': "gj", 'ќ': "kj", 'ѕ': "dz",
	// Greek (after NFD has removed the accents).
	'α': "a", 'β': "v", 'γ': "g", 'δ': "d", 'ε': "e", 'ζ': "z", 'η': "i", 'θ': "th", 'ι': "i", 'κ': "k", 'λ': "l",
	'μ': "m", 'ν': "n", 'ξ': "x", 'ο': "o", 'π': "p", 'ρ': "r", 'σ': "s", 'ς': "s", 'τ': "t", 'υ': "y", 'φ': "f",
	'χ': "ch", 'ψ': "ps", 'ω': "o",
}

// Slugify turns a display name into a mesh slug: letters are spelt in ASCII
// where that can be done without guessing (Latin with diacritics, Cyrillic,
// Greek), digits kept, everything else a single dash, at most MaxSlugLen
// bytes. A name that leaves nothing usable (e.g. "チーム", "🚀") gets
// "mesh-" and six random characters, so two such meshes of one person do
// not collide; CreateMyMesh adds a suffix on any remaining collision.
func Slugify(name string) string {
	var b strings.Builder
	dash := false
	put := func(s string) {
		for _, r := range s {
			if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
				b.WriteRune(r)
				dash = false
			} else if !dash && b.Len() > 0 {
				b.WriteByte('-')
				dash = true
			}
		}
	}
	for _, r := range norm.NFD.String(strings.ToLower(name)) {
		switch {
		case r < 0x80:
			put(string(r))
		case unicode.Is(unicode.Mn, r):
			// A diacritic split off by NFD: é → e.
		default:
			if t, ok := translit[r]; ok {
				put(t)
			} else {
				put("-")
			}
		}
	}
	s := trimSlug(b.String(), MaxSlugLen)
	if s == "" {
		s = "mesh-" + randomSlugPart(6)
	}
	return s
}

// trimSlug cuts s to at most n bytes (slugs are ASCII) without a trailing dash.
func trimSlug(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.TrimRight(s, "-")
}

const slugAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// randomSlugPart is n characters of [a-z0-9] from crypto/rand (36^6 ≈ 2.2e9
// for n=6: a collision within one person's meshes is left to the suffix).
func randomSlugPart(n int) string {
	// rand.Text would do, but its alphabet has upper-case letters.
	buf := make([]byte, n)
	for i := range buf {
		var one [1]byte
		for {
			if _, err := rand.Read(one[:]); err != nil {
				panic("crypto/rand: " + err.Error()) // never fails on supported platforms
			}
			if one[0] < 252 { // 252 = 7×36: no modulo bias
				break
			}
		}
		buf[i] = slugAlphabet[int(one[0])%len(slugAlphabet)]
	}
	return string(buf)
}
