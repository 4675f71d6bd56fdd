// Package all links every store kind into objstore.Open: import it for its
// side effect in a program that opens stores from settings.
//
//	import _ "github.com/auditstream/auditstream/services/internal/objstore/all"
package all

import (
	// Each registers its kind with objstore.
	_ "github.com/auditstream/auditstream/services/internal/objstore/azstore"
	_ "github.com/auditstream/auditstream/services/internal/objstore/gcsstore"
	_ "github.com/auditstream/auditstream/services/internal/objstore/local"
	_ "github.com/auditstream/auditstream/services/internal/objstore/s3store"
)
