// Package claudemesh is the module root; it embeds the REST contract so the
// broker serves exactly the file clients are generated from.
package claudemesh

import _ "embed"

// OpenAPI is openapi.yaml, the single source of truth for REST clients.
//
//go:embed openapi.yaml
var OpenAPI []byte
