# The CUDA backend's build, included by the top-level CMakeLists.txt when LIANDAN_CUDA is not OFF.
# Sets LIANDAN_CUDA_ENABLED (read by tests/cuda) and adds the backend to liandan_lib.

# nvcc is usually not on PATH; CUDACXX is what check_language/enable_language look at.
if(NOT DEFINED ENV{CUDACXX} AND NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
  set(ENV{CUDACXX} /usr/local/cuda/bin/nvcc)
endif()
include(CheckLanguage)
check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER)
  if(LIANDAN_CUDA STREQUAL "ON")
    message(FATAL_ERROR "LIANDAN_CUDA=ON but no nvcc was found (on PATH, CUDACXX or /usr/local/cuda/bin/nvcc)")
  endif()
  return()
endif()

# sm_90 machine code for the H100/H200 plus compute_90 PTX that newer GPUs can JIT: nothing else, so
# each .cu file is compiled twice, not once per architecture.
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES "90-real;90-virtual")
endif()
enable_language(CUDA)
# CMake 3.25 does not know nvcc 13's C++20 flag; liandan's headers need C++20 (and the targets'
# CXX_STANDARD 20 carries over to CUDA).
if(NOT CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
  set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
  set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
endif()
find_package(CUDAToolkit REQUIRED)

# Kernels (.cu): an object library of their own, without liandan_flags/liandan_warnings (GCC options
# nvcc rejects). -O3, never -G; host-side warnings go through -Xcompiler.
file(GLOB LIANDAN_CUDA_KERNELS CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/*.cu)
add_library(liandan_cuda_kernels OBJECT ${LIANDAN_CUDA_KERNELS})
target_include_directories(liandan_cuda_kernels PRIVATE ${CMAKE_SOURCE_DIR}/src)
set_target_properties(liandan_cuda_kernels PROPERTIES CUDA_STANDARD 20 CUDA_STANDARD_REQUIRED ON)
target_compile_options(liandan_cuda_kernels PRIVATE -O3 --extended-lambda --expt-relaxed-constexpr
  -Xcompiler=-Wall,-Wextra,-Wno-unused-parameter $<$<BOOL:${LIANDAN_WERROR}>:-Werror=all-warnings>)
target_link_libraries(liandan_cuda_kernels PRIVATE CUDA::cudart)

# Host code (.cpp: memory, streams, cuBLASLt) goes into liandan_lib with the usual flags.
file(GLOB LIANDAN_CUDA_HOST CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/*.cpp)
target_sources(liandan_lib PRIVATE ${LIANDAN_CUDA_HOST} $<TARGET_OBJECTS:liandan_cuda_kernels>)
target_link_libraries(liandan_lib PRIVATE CUDA::cudart CUDA::cublasLt)
# Only backend_for needs to know: a define on the one file keeps every other object's command line
# (and ccache's hits) the same with and without CUDA.
set_property(SOURCE ${CMAKE_SOURCE_DIR}/src/backend/backend.cpp APPEND PROPERTY COMPILE_DEFINITIONS LIANDAN_HAVE_CUDA=1)

if(CCACHE_PROGRAM)
  set_target_properties(liandan_cuda_kernels PROPERTIES
    CUDA_COMPILER_LAUNCHER "${CMAKE_COMMAND};-E;env;CCACHE_BASEDIR=${CMAKE_SOURCE_DIR};${CCACHE_PROGRAM}")
endif()
set(LIANDAN_CUDA_ENABLED ON)
