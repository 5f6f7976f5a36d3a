// The bounded arena gumbo parses in (moved out of html.cpp so the quote
// stripper parses within the same budget): internal to lib/mail.
#pragma once

#include <gumbo.h>

#include <atomic>
#include <chrono>
#include <csetjmp>
#include <cstddef>
#include <cstdlib>

#include "mailgate/mail/html.hpp"

namespace mailgate::mail::detail {

using Clock = std::chrono::steady_clock;

// Every allocation gumbo makes goes through here, which is where the budget
// is enforced: over the deadline, over memory, or cancelled, we longjmp out
// of gumbo_parse and free everything it had allocated at once. gumbo is C
// and keeps no state outside what it allocated here, so abandoning a parse
// this way is safe; and the tree is never freed node by node (which in
// gumbo is recursive: a deep tree would overflow the stack).

struct alignas(std::max_align_t) Block {
  Block* prev;
  Block* next;
  std::size_t size;
};

// How many allocations between clock reads: a read costs ~20 ns, gumbo
// allocates every few input bytes.
inline constexpr unsigned kClockCheckInterval = 256;

struct Arena {
  Block head{&head, &head, 0};
  std::size_t live = 0;
  std::size_t limit = 0;
  Clock::time_point deadline;
  const std::atomic<bool>* cancel = nullptr;
  unsigned calls = 0;
  HtmlFailure failure = HtmlFailure::None;
  std::jmp_buf escape;

  [[noreturn]] void fail(HtmlFailure f) {
    failure = f;
    std::longjmp(escape, 1);
  }

  void check_budget() {
    if (++calls % kClockCheckInterval != 0) return;
    if (cancel && cancel->load(std::memory_order_relaxed)) fail(HtmlFailure::Cancelled);
    if (Clock::now() > deadline) fail(HtmlFailure::OverTime);
  }

  void* allocate(std::size_t size) {
    check_budget();
    if (size > limit || live > limit - size) fail(HtmlFailure::OverMemory);
    auto* b = static_cast<Block*>(std::malloc(sizeof(Block) + size));
    if (!b) fail(HtmlFailure::OverMemory);
    b->size = size;
    b->prev = &head;
    b->next = head.next;
    head.next->prev = b;
    head.next = b;
    live += size;
    return b + 1;
  }

  void deallocate(void* p) {
    if (!p) return;
    Block* b = static_cast<Block*>(p) - 1;
    b->prev->next = b->next;
    b->next->prev = b->prev;
    live -= b->size;
    std::free(b);
  }

  ~Arena() {
    for (Block* b = head.next; b != &head;) {
      Block* next = b->next;
      std::free(b);
      b = next;
    }
  }
};

inline void* arena_allocate(void* userdata, std::size_t size) { return static_cast<Arena*>(userdata)->allocate(size); }
inline void arena_deallocate(void* userdata, void* p) { static_cast<Arena*>(userdata)->deallocate(p); }

// The only frame between setjmp and gumbo: it holds nothing that needs
// destroying, as longjmp requires.
[[gnu::noinline]] inline GumboOutput* parse_in_arena(Arena& arena, const GumboOptions& options, const char* data, std::size_t size) {
  if (setjmp(arena.escape) != 0) return nullptr;
  return gumbo_parse_with_options(&options, data, size);
}
// Gumbo's default options with its allocations in `arena` and no error
// list (errors would only cost memory).
inline GumboOptions arena_options(Arena& arena) {
  GumboOptions options = kGumboDefaultOptions;
  options.allocator = arena_allocate;
  options.deallocator = arena_deallocate;
  options.userdata = &arena;
  options.max_errors = 0;
  return options;
}

}  // namespace mailgate::mail::detail
