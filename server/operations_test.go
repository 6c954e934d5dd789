package server_test

import "testing"

func TestOperationDispatch(t *testing.T) {
	eachEngine(t, func(t *testing.T, c *client) {
		c.do("GET", "/Patient/$validate", "").want(t, 405).outcome(t, "not-supported", "")
		c.do("POST", "/$validate", patient).want(t, 404).outcome(t, "not-supported", "")
		c.do("POST", "/$nothing", patient).want(t, 404).outcome(t, "not-supported", "")
		c.do("POST", "/Unknown/$validate", patient).want(t, 404).outcome(t, "not-supported", "")
		c.do("POST", "/Patient/1/$nothing", patient).want(t, 404).outcome(t, "not-supported", "")
		c.do("POST", "/Patient/bad$id/$validate", patient).want(t, 400).outcome(t, "value", "")
		c.do("POST", "/Patient/missing/$validate", patient).want(t, 404).outcome(t, "not-found", "")
	}, withValidator(false))
}
