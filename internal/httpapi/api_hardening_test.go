package httpapi_test

import (
	"net/http"
	"testing"
)

// Regression tests for the findings of issue 8's review that concern the HTTP contract.

// TestAPIBulkChecksPermissionFirst: a bulk add whose items are all invalid still needs the
// right to add members; an outsider learns nothing of the organization (404) and a plain
// member is refused (403), instead of a 200 listing the failed items.
func TestAPIBulkChecksPermissionFirst(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	owner := b.newUser(freshEmail("owner"))
	member := b.newUser(freshEmail("member"))
	outsider := b.newUser(freshEmail("outsider"))
	org := b.newOrg(owner, "Bulk Permissions")
	b.addMember(service(), org.ID, member.Email, false)

	path := "/v1/organizations/" + org.ID + "/members:bulk"
	invalid := map[string]any{"members": []any{
		map[string]any{"email": "not an address"},
		map[string]any{"email": freshEmail("m"), "metadata": []any{1}},
	}}
	want(t, b.req(t, outsider.caller, "POST", path, invalid), http.StatusNotFound, "not_found")
	want(t, b.req(t, member.caller, "POST", path, invalid), http.StatusForbidden, "forbidden")
	want(t, b.req(t, owner.caller, "POST", "/v1/organizations/00000000-0000-4000-8000-000000000000/members:bulk", invalid), http.StatusNotFound, "not_found")

	// The admin still gets each item's problem.
	r := b.req(t, owner.caller, "POST", path, invalid)
	want(t, r, http.StatusOK, "")
	var out struct {
		Results []struct {
			Status string `json:"status"`
			Error  struct {
				Code string `json:"code"`
			} `json:"error"`
		} `json:"results"`
	}
	r.decode(t, &out)
	if len(out.Results) != 2 {
		t.Fatalf("got %d results, want 2: %s", len(out.Results), r.body)
	}
	for i, res := range out.Results {
		if res.Status != "failed" || res.Error.Code != "validation_failed" {
			t.Errorf("item %d: got %s %s, want failed validation_failed", i, res.Status, res.Error.Code)
		}
	}
}
