package collector

import (
	"fmt"
	"testing"
)

// fnv1a64 is FNV-1a, 64 bits, written out from its definition (offset basis, then for each
// byte: xor, multiply by the prime), independently of hash/fnv.
func fnv1a64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// TestShardAssignment pins the documented hash: a task belongs to exactly one shard,
// FNV-1a-64(id) mod count, for the ids users have (hex ids, names) and counts 1 to 5.
func TestShardAssignment(t *testing.T) {
	ids := []string{"fd1c56acbb2c4b1aa24ba37df99f3129", "0123456789abcdef0123456789abcdef", "t1", "t2", "import-2026_11",
		"a", "b", "c", "d", "e", "f", "zz", "task-42", "ABCDEF"}
	for _, count := range []int{1, 2, 3, 4, 5} {
		for _, id := range ids {
			want := int(fnv1a64(id) % uint64(count))
			for index := range count {
				if got := (Shard{Index: index, Count: count}).Owns(id); got != (index == want) {
					t.Errorf("count %d: shard %d owns %q = %v, want shard %d to own it", count, index, id, got, want)
				}
			}
		}
	}
	if !(Shard{}).Owns("anything") || !(Shard{Count: 1}).Owns("anything") {
		t.Error("one shard (or none configured) owns every task")
	}
}

// TestShardBalance: 10,000 ids spread over 2, 3 and 4 shards within 10 % of an even share.
func TestShardBalance(t *testing.T) {
	for _, count := range []int{2, 3, 4} {
		per := make([]int, count)
		for i := range 10_000 {
			id := fmt.Sprintf("%032x", uint64(i)*2654435761)
			for index := range count {
				if (Shard{Index: index, Count: count}).Owns(id) {
					per[index]++
				}
			}
		}
		even := 10_000 / count
		for index, n := range per {
			if n < even*9/10 || n > even*11/10 {
				t.Errorf("count %d: shard %d owns %d of 10,000, want about %d", count, index, n, even)
			}
		}
	}
}
