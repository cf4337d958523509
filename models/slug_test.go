package models_test

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/models/storetest"
)

var usableSlug = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,47}$`)

// randomFallback is what Slugify makes of a name with nothing to spell.
var randomFallback = regexp.MustCompile(`^mesh-[a-z0-9]{6}$`)

func TestSlugify(t *testing.T) {
	for _, tc := range []struct {
		name, want string // want "" = the random fallback
	}{
		{"Deploy Crew", "deploy-crew"},
		{"  Platform — team!! ", "platform-team"},
		{"Crème brûlée", "creme-brulee"},
		{"Łódź Straße Ærø", "lodz-strasse-aero"},
		{"Команда", "komanda"},
		{"Щука и ёж", "shchuka-i-ezh"},
		{"Київ", "kiiv"},
		{"Ομάδα", "omada"},
		{"Αθήνα 2026", "athina-2026"},
		{"team チーム", "team"},
		{"チーム", ""},
		{"团队", ""},
		{"فريق", ""},
		{"🚀🚀", ""},
		{"---", ""},
		{"", ""},
		{strings.Repeat("ab", 40), strings.Repeat("ab", 24)},
		{strings.Repeat("a", 47) + " b", strings.Repeat("a", 47)}, // no trailing dash after the cut
		{strings.Repeat("Я", 30), strings.Repeat("ia", 24)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := models.Slugify(tc.name)
			if !usableSlug.MatchString(got) {
				t.Fatalf("Slugify(%q) = %q: not a usable slug", tc.name, got)
			}
			if tc.want == "" {
				if !randomFallback.MatchString(got) {
					t.Errorf("Slugify(%q) = %q, want mesh-<6 random>", tc.name, got)
				}
				if again := models.Slugify(tc.name); again == got {
					t.Errorf("Slugify(%q) gave %q twice: the fallback is not random", tc.name, got)
				}
				return
			}
			if got != tc.want {
				t.Errorf("Slugify(%q) = %q, want %q", tc.name, got, tc.want)
			}
		})
	}
}

// TestCreateMyMeshSlugs: every name gets a usable slug distinct from the
// user's other meshes; a derived slug that is taken gets a suffix, a chosen
// one is refused. (Before: any name without ASCII letters slugged to
// "mesh", so a person's second such mesh failed with 409 slug_taken.)
func TestCreateMyMeshSlugs(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *models.Store) {
		ctx := context.Background()
		u := signup(t, s, "ada@example.com")
		other := signup(t, s, "grace@example.com")
		seen := map[string]string{}
		for _, name := range []string{"Команда", "チーム", "團隊", "チーム", "Команда", "Komanda", "🚀", "Ομάδα",
			strings.Repeat("x", 100), strings.Repeat("x", 100)} {
			got, err := s.CreateMyMesh(ctx, u, models.CreateMeshInput{Name: name})
			if err != nil {
				t.Fatalf("create %q after %v: %v", name, seen, err)
			}
			slug := got.Mesh.Slug
			if !usableSlug.MatchString(slug) {
				t.Errorf("%q: slug %q is not usable", name, slug)
			}
			if prev, dup := seen[slug]; dup {
				t.Errorf("%q and %q share slug %q", prev, name, slug)
			}
			seen[slug] = name
		}
		for _, want := range []string{"komanda", "komanda-2", "komanda-3", "omada", strings.Repeat("x", 48), strings.Repeat("x", 46) + "-2"} {
			if _, ok := seen[want]; !ok {
				t.Errorf("no mesh got slug %q: %v", want, seen)
			}
		}
		// Another person's slugs are theirs: the same name gives the same slug.
		if got, err := s.CreateMyMesh(ctx, other, models.CreateMeshInput{Name: "Команда"}); err != nil || got.Mesh.Slug != "komanda" {
			t.Errorf("grace's Команда: %v, %v; want slug komanda", got, err)
		}

		// A chosen slug is used as given, and refused when taken.
		got, err := s.CreateMyMesh(ctx, u, models.CreateMeshInput{Name: "チーム", Slug: "tokyo-team"})
		if err != nil || got.Mesh.Slug != "tokyo-team" {
			t.Fatalf("chosen slug: %v, %v", got, err)
		}
		_, err = s.CreateMyMesh(ctx, u, models.CreateMeshInput{Name: "Other", Slug: "tokyo-team"})
		if e, ok := models.AsError(err); !ok || e.Code != "slug_taken" || !strings.Contains(e.Detail, `"tokyo-team"`) {
			t.Errorf("chosen slug taken: err = %v, want slug_taken naming it", err)
		}
		for _, bad := range []string{"Tokyo", "-x", "a_b", "команда", strings.Repeat("a", 49), "a b"} {
			_, err := s.CreateMyMesh(ctx, u, models.CreateMeshInput{Name: "Bad", Slug: bad})
			e, ok := models.AsError(err)
			if !ok || e.Code != "validation_failed" || len(e.Fields) != 1 || e.Fields[0].Field != "slug" {
				t.Errorf("slug %q: err = %v, want validation_failed on slug", bad, err)
			}
		}
	})
}
