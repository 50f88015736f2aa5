// 64-byte aligned, zero-initialised scratch buffers shared by the CPU kernels.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

namespace contrastx::cpu::detail {

inline std::int64_t round_up(std::int64_t a, std::int64_t b) { return (a + b - 1) / b * b; }

// 64-byte aligned, zero-initialised buffer of at least one element.
template <typename T>
class Buffer {
   public:
    explicit Buffer(std::int64_t count) {
        const auto bytes = static_cast<std::size_t>(
            round_up(std::max<std::int64_t>(count, 1) * std::int64_t(sizeof(T)), 64));
        ptr_.reset(static_cast<T*>(std::aligned_alloc(64, bytes)));
        if (!ptr_) throw std::bad_alloc();
        std::memset(static_cast<void*>(ptr_.get()), 0, bytes);
    }
    T* get() const { return ptr_.get(); }

   private:
    struct Free {
        void operator()(T* p) const { std::free(p); }
    };
    std::unique_ptr<T, Free> ptr_;
};

}  // namespace contrastx::cpu::detail
