package httpapi

import (
	"fmt"
	"net/url"
	"strings"
)

// Query strings are parsed strictly. net/url's Query() drops what it cannot
// parse and keeps going: "op=app%zzend" and "op=append;x=1" lost their op,
// so an append became a put and replaced the value. Here a query string
// either parses completely into parameters the endpoint takes, each at most
// once, or the request is refused with 400 naming the parameter.

// queryParam is one parameter an endpoint takes: its name and, after
// parseQuery, whether it was given and its (unescaped) value.
type queryParam struct {
	name  string
	value string
	given bool
}

// unsupportedParams are parameters a user may know from other stores
// (Consul, etcd's JSON gateway) or from raftkv's planned API, which this
// version does not have. They are refused by name, not ignored: ignoring
// ?cas= would turn a compare-and-swap into a blind write.
var unsupportedParams = []string{
	"recurse", "ttl", "flags", "acquire", "release",
	"stale", "consistent", "dc", "raw", "to",
}

// paramHints say what to use instead of a parameter of another store.
var paramHints = map[string]string{
	"recurse": "use ?prefix (GET /v1/kv/{prefix}?prefix lists a subtree; GET /v1/kv/?prefix every key)",
}

// parseQuery parses raw (a URL's RawQuery) into params, for the endpoint
// where (e.g. "PUT /v1/kv/{key}"). Every "&"-separated part must be
// name[=value] with valid %-escapes, name one of params, given at most
// once; the error names the parameter. An empty raw query takes no work
// and no allocation; neither does a query without escapes.
func parseQuery(raw string, params []queryParam, where string) error {
	for more := raw != ""; more; {
		var part string
		part, raw, more = strings.Cut(raw, "&")
		if part == "" {
			return fmt.Errorf(`empty query parameter (a stray "&") in the query of %s`, where)
		}
		rawName, rawValue, _ := strings.Cut(part, "=")
		name, err := unescapeQuery(rawName)
		if err != nil {
			return fmt.Errorf("query parameter name %q is malformed: %v", rawName, err)
		}
		if name == "" {
			return fmt.Errorf("query parameter %q has no name", part)
		}
		if strings.Contains(part, ";") {
			// Go's net/url stopped splitting at ";" (Go 1.17), and so do
			// we: refuse rather than guess.
			return fmt.Errorf(`query parameter %q: ";" is not a separator, use "&"`, name)
		}
		value, err := unescapeQuery(rawValue)
		if err != nil {
			return fmt.Errorf("query parameter %q: malformed value %q: %v", name, rawValue, err)
		}
		p := findParam(params, name)
		switch {
		case p != nil && p.given:
			return fmt.Errorf("query parameter %q is given more than once", name)
		case p != nil:
			p.value, p.given = value, true
		case isUnsupported(name):
			if h := paramHints[name]; h != "" {
				return fmt.Errorf("query parameter %q is not supported: %s", name, h)
			}
			return fmt.Errorf("query parameter %q is not supported", name)
		default:
			return fmt.Errorf("query parameter %q is not accepted by %s (it takes %s)", name, where, paramNames(params))
		}
	}
	return nil
}

// unescapeQuery is url.QueryUnescape without a copy when there is
// nothing to unescape.
func unescapeQuery(s string) (string, error) {
	if !strings.ContainsAny(s, "%+") {
		return s, nil
	}
	return url.QueryUnescape(s)
}

func findParam(params []queryParam, name string) *queryParam {
	for i := range params {
		if params[i].name == name {
			return &params[i]
		}
	}
	return nil
}

func isUnsupported(name string) bool {
	for _, u := range unsupportedParams {
		if u == name {
			return true
		}
	}
	return false
}

func paramNames(params []queryParam) string {
	if len(params) == 0 {
		return "none"
	}
	names := make([]string, len(params))
	for i, p := range params {
		names[i] = p.name
	}
	return strings.Join(names, ", ")
}

// noQuery refuses any query string, for the endpoints that take none.
func noQuery(raw, where string) error {
	return parseQuery(raw, nil, where)
}
