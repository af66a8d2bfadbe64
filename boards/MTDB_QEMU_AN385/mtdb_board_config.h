// MicroTetherDB qemu board configuration (selected with -DMP_CONFIGFILE).
//
// The qemu port's mpconfigport.h sets its options unconditionally, so this
// header includes it first and then overrides what the database needs.

#include "mpconfigport.h"

// time module (ticks_ms/us/cpu, sleep*, time, time_ns, localtime, mktime),
// clocked by the Cortex-M SysTick: see board.c.
#undef MICROPY_PY_TIME
#define MICROPY_PY_TIME                         (1)
#define MICROPY_PY_TIME_GMTIME_LOCALTIME_MKTIME (1)
#define MICROPY_PY_TIME_TIME_TIME_NS            (1)
#define MICROPY_PY_TIME_INCLUDEFILE             "board_modtime.h"

// asyncio (frozen from extmod/asyncio) needs select and the _asyncio helper.
#undef MICROPY_PY_SELECT
#define MICROPY_PY_SELECT                       (1)
#undef MICROPY_PY_ASYNCIO
#define MICROPY_PY_ASYNCIO                      (1)

// sys.stdin.buffer / sys.stdout.buffer, as on ESP32.
#undef MICROPY_PY_SYS_STDIO_BUFFER
#define MICROPY_PY_SYS_STDIO_BUFFER             (1)

// modbtree talks to its stream through mp_stream_posix_*().
#define MICROPY_STREAMS_POSIX_API               (1)
// Berkeley DB's malloc/free (board.c) as tracked allocations, see there.
#define MICROPY_TRACKED_ALLOC                   (1)

// Start the SysTick and the UART receive interrupt (idempotent, run by mp_init()).
#define MICROPY_PORT_INIT_FUNC                  mtdb_board_init()
void mtdb_board_init(void);

// Idle (select.poll, time.sleep) with WFI: woken by the next SysTick or UART byte.
#define MICROPY_INTERNAL_WFE(TIMEOUT_MS)        mtdb_board_wfe(TIMEOUT_MS)
void mtdb_board_wfe(mp_uint_t timeout_ms);

// VfsFat options as on the ESP32 port.
#define MICROPY_FATFS_ENABLE_LFN                (1)
#define MICROPY_FATFS_RPATH                     (2)
#define MICROPY_FATFS_MAX_SS                    (4096)
#define MICROPY_FATFS_LFN_CODE_PAGE             437
