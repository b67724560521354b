package registry

// Action is what a request asks to do. It is resolved from the method and path
// before any handler runs, and is the same word in routing, policy input,
// metrics labels and logs.
type Action string

// The actions of the /v2 API.
const (
	ActionPing           Action = "ping"            // GET /v2/
	ActionGetBlob        Action = "get-blob"        // GET, HEAD /v2/<name>/blobs/<digest>
	ActionDeleteBlob     Action = "delete-blob"     // DELETE /v2/<name>/blobs/<digest>
	ActionStartUpload    Action = "start-upload"    // POST /v2/<name>/blobs/uploads/ (also monolithic ?digest=)
	ActionMountBlob      Action = "mount-blob"      // POST /v2/<name>/blobs/uploads/?mount=<digest>[&from=<repo>]
	ActionGetUpload      Action = "get-upload"      // GET /v2/<name>/blobs/uploads/<id>
	ActionPatchUpload    Action = "patch-upload"    // PATCH /v2/<name>/blobs/uploads/<id>
	ActionFinishUpload   Action = "finish-upload"   // PUT /v2/<name>/blobs/uploads/<id>?digest=
	ActionCancelUpload   Action = "cancel-upload"   // DELETE /v2/<name>/blobs/uploads/<id>
	ActionGetManifest    Action = "get-manifest"    // GET, HEAD /v2/<name>/manifests/<reference>
	ActionPutManifest    Action = "put-manifest"    // PUT /v2/<name>/manifests/<reference>
	ActionDeleteManifest Action = "delete-manifest" // DELETE /v2/<name>/manifests/<reference>
	ActionListTags       Action = "list-tags"       // GET /v2/<name>/tags/list
	ActionGetReferrers   Action = "get-referrers"   // GET /v2/<name>/referrers/<digest>
	ActionListCatalog    Action = "list-catalog"    // GET /v2/_catalog
)

// Kind groups actions by the access they need: pull, push or delete.
type Kind string

// Access kinds.
const (
	KindNone   Kind = ""
	KindPull   Kind = "pull"
	KindPush   Kind = "push"
	KindDelete Kind = "delete"
)

// Kind reports the access the action needs.
func (a Action) Kind() Kind {
	switch a {
	case ActionGetBlob, ActionGetManifest, ActionListTags, ActionGetReferrers, ActionListCatalog:
		return KindPull
	case ActionStartUpload, ActionMountBlob, ActionGetUpload, ActionPatchUpload, ActionFinishUpload,
		ActionCancelUpload, ActionPutManifest:
		return KindPush
	case ActionDeleteBlob, ActionDeleteManifest:
		return KindDelete
	}
	return KindNone
}
