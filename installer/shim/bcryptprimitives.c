/* Stand-in for bcryptprimitives.dll!ProcessPrng, which Wine has only from 8.13 on.
 *
 * The Rust standard library (in the cryptography, pydantic-core and blake3 wheels) imports
 * ProcessPrng; without it their extension modules fail to load under Debian's Wine 8.0
 * ("DLL load failed ... Module not found"). Real Windows 10/11 and Server 2016+ have the DLL:
 * the installer never ships this file, only the Wine lane copies it into its prefix.
 * Build: x86_64-w64-mingw32-gcc -O2 -shared -s -o bcryptprimitives.dll bcryptprimitives.c -lbcrypt
 */
#include <windows.h>
#include <bcrypt.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (BCryptGenRandom(NULL, data, n, BCRYPT_USE_SYSTEM_PREFERRED_RNG) != 0)
            return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
