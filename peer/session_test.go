package peer

import (
	"slices"
	"testing"
)

func TestCloseNames(t *testing.T) {
	names := []string{"dan", "dana", "bob", "build-bot", "ada"}
	for _, tc := range []struct {
		typed string
		want  []string
	}{
		{"dan", []string{"@dan"}}, // the @ forgotten: that one name only
		{"bbo", []string{"@bob"}},
		{"bu", []string{"@build-bot"}},
		{"zzzzzz", nil},
		{"dn", []string{"@dan"}},
		{"buidl-bot", []string{"@build-bot"}},
		{"da", []string{"@dan", "@dana", "@ada"}}, // at most three
	} {
		if got := closeNames(tc.typed, names); !slices.Equal(got, tc.want) {
			t.Errorf("closeNames(%q) = %v, want %v", tc.typed, got, tc.want)
		}
	}
}
