package metastudio

import (
	"reflect"
	"testing"
)

// TestTaskFieldsFollowTheTags: the one-pass reader's names and places of the fields agree
// with Task's json tags, which encoding/json (decodeObject) follows.
func TestTaskFieldsFollowTheTags(t *testing.T) {
	var task Task
	fields := task.fields()
	typ, val := reflect.TypeOf(task), reflect.ValueOf(&task).Elem()
	if len(taskFieldNames) != typ.NumField() {
		t.Fatalf("%d names for the %d fields of Task", len(taskFieldNames), typ.NumField())
	}
	for i, name := range taskFieldNames {
		for j := range typ.NumField() {
			if typ.Field(j).Tag.Get("json") == name && val.Field(j).Addr().Interface() != fields[i] {
				t.Errorf("%q is read into the wrong field of Task", name)
			}
		}
	}
}
