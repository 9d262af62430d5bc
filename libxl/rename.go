package libxl

/*
#include "glue.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// ErrNameChanged says that RenameDomain found the domain under another
// name than the one expected: someone else renamed (claimed) it first.
var ErrNameChanged = errors.New("the domain no longer has the expected name")

// RenameDomain renames domain domid from oldName to newName. libxl checks
// the old name and writes the new one in one xenstore transaction, so of
// two callers racing to rename the same domain from the same old name
// exactly one succeeds; the other gets ErrNameChanged (or
// ErrDomainNotFound if the domain is gone). newName must not be taken by
// another domain.
func (c *Context) RenameDomain(domid uint32, oldName, newName string) error {
	if err := noNUL(oldName, newName); err != nil {
		return fmt.Errorf("libxl: rename domain %d: %w", domid, err)
	}
	if oldName == "" || newName == "" {
		return fmt.Errorf("libxl: rename domain %d: old and new names must not be empty", domid)
	}
	return c.do(func(p *C.libxl_ctx) error {
		co, cn := C.CString(oldName), C.CString(newName)
		defer C.free(unsafe.Pointer(co))
		defer C.free(unsafe.Pointer(cn))
		rc := C.libxl_domain_rename(p, C.uint32_t(domid), co, cn)
		if rc == 0 {
			return nil
		}
		// libxl says ERROR_FAIL both for a lost race and for a domain that
		// vanished: tell them apart by what the domain is called now.
		var d C.libxl_dominfo
		C.libxl_dominfo_init(&d)
		defer C.libxl_dominfo_dispose(&d)
		if C.libxl_domain_info(p, &d, C.uint32_t(domid)) == C.ERROR_DOMAIN_NOTFOUND {
			return check("domain_rename "+oldName, domid, C.ERROR_DOMAIN_NOTFOUND)
		}
		name := C.libxl_domid_to_name(p, C.uint32_t(domid))
		if name != nil {
			defer C.free(unsafe.Pointer(name))
			switch now := C.GoString(name); now {
			case newName:
				// The transaction went through; what failed after it
				// (libxl's copy of the domain config) does not matter
				// to vxn.
				return nil
			case oldName:
			default:
				return fmt.Errorf("libxl: rename domain %d from %s: it is named %s now: %w", domid, oldName, now, ErrNameChanged)
			}
		}
		return check("domain_rename "+oldName+" to "+newName, domid, rc)
	})
}
