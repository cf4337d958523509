// Package client is the REST client generated from openapi.yaml by
// oapi-codegen (types and client). Do not edit client.gen.go by hand: change
// openapi.yaml and run `go generate ./client`; TestGeneratedClientIsCurrent
// fails when the committed file is stale.
package client

//go:generate go tool oapi-codegen -config config.yaml ../openapi.yaml
