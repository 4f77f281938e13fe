// Shared by the *_kernel.h headers: a qualifier that makes a function callable from
// both CUDA device code and plain host C++ (the test harness compiles these headers
// with g++, where __host__/__device__ do not exist).
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define SGM_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define SGM_HOST_DEVICE inline
#endif
